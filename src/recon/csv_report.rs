//! Uploaded settlement reports: CSV with the header row
//! `provider_payment_id,amount,currency,status` (DESIGN §2), parsed with the `csv` crate.
//!
//! A row is a charge, or a refund when its id is a refund's (`re_…`, Stripe's prefix).
//! `amount` is an integer in minor units; a refund may be written negative (as Stripe's
//! balance reports do), its absolute value is compared. `currency` is upper-cased.
//! `status` is lower-cased; `succeeded`, `paid`, `available` and `pending` mean the money
//! moved and read as `succeeded`.

use crate::provider::types::{SettlementKind, SettlementRow};

/// The header row, in order.
pub const HEADER: [&str; 4] = ["provider_payment_id", "amount", "currency", "status"];
/// Rows one report may hold.
pub const ROWS_MAX: usize = 200_000;

/// Parses a settlement report.
///
/// # Errors
/// A message naming the line at fault (1 = the header).
pub fn parse(text: &[u8]) -> Result<Vec<SettlementRow>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(text);
    let header = reader
        .headers()
        .map_err(|e| format!("line 1: {e}"))?
        .iter()
        .map(str::to_lowercase)
        .collect::<Vec<_>>();
    if header != HEADER {
        return Err(format!("line 1: the header must be `{}`", HEADER.join(",")));
    }
    let mut rows = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let line = index + 2;
        let record = record.map_err(|e| format!("line {line}: {e}"))?;
        if rows.len() >= ROWS_MAX {
            return Err(format!("more than {ROWS_MAX} rows"));
        }
        rows.push(row(&record).map_err(|e| format!("line {line}: {e}"))?);
    }
    Ok(rows)
}

fn row(record: &csv::StringRecord) -> Result<SettlementRow, String> {
    let field = |i: usize| record.get(i).unwrap_or_default();
    let provider_id = field(0);
    if provider_id.is_empty() || provider_id.len() > 255 {
        return Err("provider_payment_id must be 1-255 characters".to_owned());
    }
    let amount: i64 = field(1)
        .parse()
        .map_err(|_| "amount must be an integer in minor units".to_owned())?;
    let currency = field(2).to_uppercase();
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err("currency must be an ISO 4217 code".to_owned());
    }
    let status = match field(3).to_lowercase().as_str() {
        "succeeded" | "paid" | "available" | "pending" => "succeeded".to_owned(),
        "" => return Err("status must not be empty".to_owned()),
        other => other.to_owned(),
    };
    let kind = if provider_id.starts_with("re_") {
        SettlementKind::Refund
    } else {
        SettlementKind::Charge
    };
    Ok(SettlementRow {
        provider_id: provider_id.to_owned(),
        kind,
        amount: amount.unsigned_abs(),
        currency,
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_parse_and_normalise() {
        let text = b"provider_payment_id,amount,currency,status\npi_1, 1999 ,usd,Succeeded\nre_1,-500,USD,available\npi_2,10,EUR,failed\n";
        let rows = parse(text).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(
            (
                rows[0].amount,
                rows[0].currency.as_str(),
                rows[0].status.as_str()
            ),
            (1999, "USD", "succeeded")
        );
        assert_eq!(
            (rows[1].kind, rows[1].amount),
            (SettlementKind::Refund, 500)
        );
        assert_eq!(rows[2].status, "failed");
    }

    #[test]
    fn errors_name_the_line() {
        assert!(parse(b"id,amount\n").unwrap_err().contains("line 1"));
        let err = parse(b"provider_payment_id,amount,currency,status\npi_1,1.5,USD,succeeded\n")
            .unwrap_err();
        assert!(err.starts_with("line 2"), "{err}");
        let err = parse(b"provider_payment_id,amount,currency,status\npi_1,1,USD,succeeded\npi_2,1,US,succeeded\n").unwrap_err();
        assert!(err.starts_with("line 3"), "{err}");
        assert!(parse(b"provider_payment_id,amount,currency,status\npi_1,1,USD\n").is_err());
    }
}
