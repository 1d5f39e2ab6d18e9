//! Money: integer amounts in a currency's minor unit (`amount: 1999` = 19.99 USD).

/// Decimal places of the minor unit per ISO 4217 for the codes paykeep knows; others use 2.
/// Source: ISO 4217 minor-unit column (JPY, KRW … have none; BHD, KWD … have three).
pub fn minor_unit_exponent(currency: &str) -> u32 {
    match currency {
        "JPY" | "KRW" | "VND" | "CLP" | "ISK" | "UGX" | "XAF" | "XOF" | "PYG" => 0,
        "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "IQD" | "LYD" => 3,
        _ => 2,
    }
}

/// Formats `amount_minor` in major units: `format_major(1999, "USD")` = `"19.99 USD"`.
pub fn format_major(amount_minor: u64, currency: &str) -> String {
    let exponent = minor_unit_exponent(currency);
    if exponent == 0 {
        return format!("{amount_minor} {currency}");
    }
    let scale = 10u64.pow(exponent);
    format!(
        "{}.{:0width$} {currency}",
        amount_minor / scale,
        amount_minor % scale,
        width = exponent as usize
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_major_units() {
        assert_eq!(format_major(1999, "USD"), "19.99 USD");
        assert_eq!(format_major(5, "EUR"), "0.05 EUR");
        assert_eq!(format_major(500, "JPY"), "500 JPY");
        assert_eq!(format_major(1234, "KWD"), "1.234 KWD");
    }
}
