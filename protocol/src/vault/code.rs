//! Recovery codes: the typed text and its normal form (spec/vault.md §2.4).

use crate::error::{Error, Result};
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

/// The fewest digits a recovery code may have (spec/vault.md §2.4 step 4).
pub const CODE_MIN_DIGITS: usize = 6;
/// The most digits a recovery code may have (spec/vault.md §2.4 step 3).
pub const CODE_MAX_DIGITS: usize = 64;

/// spec/vault.md §2.4: the normal form of a typed recovery code, the bytes OPAQUE takes as
/// its password. NFKC, then spaces and hyphens removed; anything but ASCII digits, or more
/// than 64 of them, is `vault.code.malformed`; fewer than 6 digits, one digit repeated, or
/// a run of consecutive digits (up or down, modulo 10) is `vault.code.weak`.
pub fn normalise_code(text: &str) -> Result<Zeroizing<Vec<u8>>> {
    // Steps 1–2.
    let digits: Zeroizing<Vec<u8>> = Zeroizing::new(
        text.nfkc()
            .filter(|c| !matches!(c, ' ' | '-'))
            .map(|c| if c.is_ascii_digit() { Ok(c as u8) } else { Err(Error::VaultCodeMalformed) })
            .collect::<Result<_>>()?,
    );
    // Step 3.
    if digits.len() > CODE_MAX_DIGITS {
        return Err(Error::VaultCodeMalformed);
    }
    // Step 4.
    let step =
        |d: i8| digits.windows(2).all(|w| (w[1] as i8 - w[0] as i8).rem_euclid(10) == d.rem_euclid(10));
    if digits.len() < CODE_MIN_DIGITS || step(0) || step(1) || step(-1) {
        return Err(Error::VaultCodeWeak);
    }
    Ok(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_normal_form_drops_separators_and_maps_full_width_digits() {
        for text in
            ["482916", "482 916", "482-916", " 48-29 16 ", "４８２９１６", "482\u{3000}916", "482\u{a0}916"]
        {
            assert_eq!(normalise_code(text).unwrap().as_slice(), b"482916", "{text:?}");
        }
    }

    #[test]
    fn malformed_and_weak_codes_are_refused() {
        for text in ["48291a", "482\t916", "482916\n", "482\u{2013}916", "٤٨٢٩١٦", "482_916"] {
            assert_eq!(normalise_code(text).unwrap_err(), Error::VaultCodeMalformed, "{text:?}");
        }
        for text in ["", "48291", "000000", "123456", "654321", "7890123", "210987", "1 2 3 4 5 6"] {
            assert_eq!(normalise_code(text).unwrap_err(), Error::VaultCodeWeak, "{text:?}");
        }
        assert_eq!(normalise_code(&"31".repeat(32)).unwrap().len(), 64);
        assert_eq!(normalise_code(&"31".repeat(33)).unwrap_err(), Error::VaultCodeMalformed);
    }
}
