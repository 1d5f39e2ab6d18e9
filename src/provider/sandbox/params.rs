//! Stripe's parameter rules for the sandbox's routes: the names each route takes, currencies
//! and their minimum amounts, enum values, metadata limits, list paging and `expand`. Pure
//! functions: each returns the parsed value or the 400 Stripe answers
//! (docs.stripe.com/api/errors: `{"error": {type, code, param, message}}`).

use std::collections::BTreeMap;

use crate::provider::sandbox::answer::{error, Answer};

/// A request's parameters, form body or query string. A repeated name keeps its last value;
/// array items are numbered: `expand[]=a&expand[]=b` and the SDKs' `expand[0]=a&expand[1]=b`
/// both become `expand[0]`, `expand[1]`, so both forms mean (and fingerprint) the same.
pub type Params = BTreeMap<String, String>;

/// Stripe's largest `amount` (docs.stripe.com/currencies: eight digits of minor units).
pub const AMOUNT_MAX: u64 = 99_999_999;
/// Default and largest `limit` of list calls (docs.stripe.com/api/pagination).
pub const LIST_LIMIT_DEFAULT: usize = 10;
pub const LIST_LIMIT_MAX: usize = 100;
/// Metadata limits (docs.stripe.com/api/metadata): keys, key length, value length.
pub const METADATA_KEYS_MAX: usize = 50;
pub const METADATA_KEY_CHARS_MAX: usize = 40;
pub const METADATA_VALUE_CHARS_MAX: usize = 500;
/// Array items one parameter may hold (`expand[N]`, `payment_method_types[N]`).
pub const ARRAY_ITEMS_MAX: usize = 100;

/// The parameters every list route takes (docs.stripe.com/api/pagination).
pub const LIST_PARAMS: &[&str] = &[
    "limit",
    "starting_after",
    "ending_before",
    "created",
    "created[gt]",
    "created[gte]",
    "created[lt]",
    "created[lte]",
    "expand[*]",
];

/// Presentment currencies of a US Stripe account (docs.stripe.com/currencies), lower case.
const CURRENCIES: &[&str] = &[
    "usd", "aed", "afn", "all", "amd", "ang", "aoa", "ars", "aud", "awg", "azn", "bam", "bbd",
    "bdt", "bgn", "bif", "bmd", "bnd", "bob", "brl", "bsd", "bwp", "byn", "bzd", "cad", "cdf",
    "chf", "clp", "cny", "cop", "crc", "cve", "czk", "djf", "dkk", "dop", "dzd", "egp", "etb",
    "eur", "fjd", "fkp", "gbp", "gel", "gip", "gmd", "gnf", "gtq", "gyd", "hkd", "hnl", "htg",
    "huf", "idr", "ils", "inr", "isk", "jmd", "jpy", "kes", "kgs", "khr", "kmf", "krw", "kyd",
    "kzt", "lak", "lbp", "lkr", "lrd", "lsl", "mad", "mdl", "mga", "mkd", "mmk", "mnt", "mop",
    "mur", "mvr", "mwk", "mxn", "myr", "mzn", "nad", "ngn", "nio", "nok", "npr", "nzd", "pab",
    "pen", "pgk", "php", "pkr", "pln", "pyg", "qar", "ron", "rsd", "rub", "rwf", "sar", "sbd",
    "scr", "sek", "sgd", "shp", "sle", "sos", "srd", "std", "szl", "thb", "tjs", "top", "try",
    "ttd", "twd", "tzs", "uah", "ugx", "uyu", "uzs", "vnd", "vuv", "wst", "xaf", "xcd", "xof",
    "xpf", "yer", "zar", "zmw",
];

/// Currencies without a minor unit (docs.stripe.com/currencies#zero-decimal).
const ZERO_DECIMAL: &[&str] = &[
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];

/// Minimum charge amounts in minor units (docs.stripe.com/currencies#minimum-and-maximum-
/// charge-amounts). Stripe checks other currencies against $0.50 after conversion, which
/// the sandbox cannot do: for them any amount from 1 passes.
const MINIMUM_AMOUNTS: &[(&str, u64)] = &[
    ("usd", 50),
    ("aed", 200),
    ("aud", 50),
    ("bgn", 100),
    ("brl", 50),
    ("cad", 50),
    ("chf", 50),
    ("czk", 1500),
    ("dkk", 250),
    ("eur", 50),
    ("gbp", 30),
    ("hkd", 400),
    ("huf", 17500),
    ("inr", 50),
    ("jpy", 50),
    ("mxn", 1000),
    ("myr", 200),
    ("nok", 300),
    ("nzd", 50),
    ("pln", 200),
    ("ron", 200),
    ("sek", 300),
    ("sgd", 50),
    ("thb", 1000),
];

/// Stripe's 400 `invalid_request_error` naming `param`.
pub fn invalid(code: Option<&str>, param: &str, message: &str) -> Answer {
    let mut answer = error(400, "invalid_request_error", code, message);
    answer.body["error"]["param"] = serde_json::json!(param);
    answer
}

/// Reads a form body or query string (see [`Params`]).
///
/// # Errors
/// 400 when it is not form-encoded or an array holds more than [`ARRAY_ITEMS_MAX`] items.
pub fn parse(raw: &[u8]) -> Result<Params, Answer> {
    let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(raw) else {
        let message = "The request is not form-encoded.";
        return Err(error(400, "invalid_request_error", None, message));
    };
    let mut params = Params::new();
    let mut items: BTreeMap<String, usize> = BTreeMap::new();
    for (name, value) in pairs {
        let name = match name.strip_suffix("[]") {
            Some(array) => {
                let next = items.entry(array.to_owned()).or_insert(0);
                *next += 1;
                format!("{array}[{}]", *next - 1)
            }
            None => name,
        };
        params.insert(name, value);
    }
    if let Some((array, _)) = items.iter().find(|(_, n)| **n > ARRAY_ITEMS_MAX) {
        let message = format!("Array {array} holds more than {ARRAY_ITEMS_MAX} items.");
        return Err(invalid(Some("parameter_invalid"), array, &message));
    }
    Ok(params)
}

/// True when `name` matches `pattern`: `"amount"` exactly, `"metadata[*]"` any
/// `metadata[key]` (one level).
fn accepts(pattern: &str, name: &str) -> bool {
    let Some(prefix) = pattern.strip_suffix("[*]") else {
        return pattern == name;
    };
    let inner = name
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('['))
        .and_then(|rest| rest.strip_suffix(']'));
    inner.is_some_and(|key| !key.is_empty() && !key.contains(['[', ']']))
}

/// Refuses the first parameter no pattern of `accepted` matches, as Stripe does.
///
/// # Errors
/// 400 `parameter_unknown` naming it.
pub fn known(params: &Params, accepted: &[&str]) -> Result<(), Answer> {
    match params
        .keys()
        .find(|name| !accepted.iter().any(|p| accepts(p, name)))
    {
        Some(name) => Err(invalid(
            Some("parameter_unknown"),
            name,
            &format!("Received unknown parameter: {name}"),
        )),
        None => Ok(()),
    }
}

/// An optional integer parameter.
///
/// # Errors
/// 400 `parameter_invalid_integer` when it is not one.
pub fn integer(params: &Params, name: &str) -> Result<Option<i64>, Answer> {
    match params.get(name) {
        None => Ok(None),
        Some(text) => text.parse::<i64>().map(Some).map_err(|_| {
            let message = format!("Invalid integer: {text}");
            invalid(Some("parameter_invalid_integer"), name, &message)
        }),
    }
}

/// A required parameter's value.
///
/// # Errors
/// 400 `parameter_missing`.
pub fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, Answer> {
    match params.get(name) {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(invalid(
            Some("parameter_missing"),
            name,
            &format!("Missing required param: {name}."),
        )),
    }
}

/// The `currency` parameter, lower-cased.
///
/// # Errors
/// 400 `parameter_missing`, or Stripe's "Invalid currency" (no `code`).
pub fn currency(params: &Params) -> Result<String, Answer> {
    let currency = required(params, "currency")?.to_ascii_lowercase();
    if CURRENCIES.contains(&currency.as_str()) {
        return Ok(currency);
    }
    let message = format!(
        "Invalid currency: {currency}. Stripe currently supports these currencies: {}",
        CURRENCIES.join(", ")
    );
    Err(invalid(None, "currency", &message))
}

/// The smallest amount Stripe charges in `currency`, in minor units.
pub fn minimum_amount(currency: &str) -> u64 {
    MINIMUM_AMOUNTS
        .iter()
        .find(|(c, _)| *c == currency)
        .map_or(1, |(_, minimum)| *minimum)
}

/// `amount` minor units of `currency` written in major units: `0.50 usd`, `50 jpy`.
fn major_units(amount: u64, currency: &str) -> String {
    if ZERO_DECIMAL.contains(&currency) {
        format!("{amount} {currency}")
    } else {
        format!("{}.{:02} {currency}", amount / 100, amount % 100)
    }
}

/// A charge's `amount` in `currency`: required, an integer, within Stripe's bounds.
///
/// # Errors
/// 400 `parameter_missing`, `parameter_invalid_integer`, `amount_too_small` or
/// `amount_too_large`, each naming `amount`.
pub fn charge_amount(params: &Params, currency: &str) -> Result<u64, Answer> {
    required(params, "amount")?;
    let amount = integer(params, "amount")?.unwrap_or(0);
    let minimum = minimum_amount(currency);
    if amount < 0 {
        let message = "This value must be greater than or equal to 1.";
        return Err(invalid(
            Some("parameter_invalid_integer"),
            "amount",
            message,
        ));
    }
    let amount = amount.unsigned_abs();
    if amount < minimum {
        let message = format!("Amount must be at least {}", major_units(minimum, currency));
        return Err(invalid(Some("amount_too_small"), "amount", &message));
    }
    if amount > AMOUNT_MAX {
        let message = format!(
            "Amount must be no more than {}",
            major_units(AMOUNT_MAX, currency)
        );
        return Err(invalid(Some("amount_too_large"), "amount", &message));
    }
    Ok(amount)
}

/// A positive integer parameter such as a refund's `amount` or `amount_to_capture`.
///
/// # Errors
/// 400 `parameter_invalid_integer` when it is not an integer of at least 1.
pub fn positive(params: &Params, name: &str) -> Result<Option<u64>, Answer> {
    match integer(params, name)? {
        None => Ok(None),
        Some(n) if n >= 1 => Ok(Some(n.unsigned_abs())),
        Some(_) => Err(invalid(
            Some("parameter_invalid_integer"),
            name,
            "This value must be greater than or equal to 1.",
        )),
    }
}

/// An optional enum parameter, one of `allowed`.
///
/// # Errors
/// 400 "Invalid {name}: must be one of a, b, or c", naming it (Stripe gives no `code`).
pub fn one_of<'a>(
    params: &'a Params,
    name: &str,
    allowed: &[&str],
) -> Result<Option<&'a str>, Answer> {
    let Some(value) = params.get(name) else {
        return Ok(None);
    };
    if allowed.contains(&value.as_str()) {
        return Ok(Some(value));
    }
    let list = match allowed.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{}, or {last}", rest.join(", ")),
        None => String::new(),
    };
    let message = format!("Invalid {name}: must be one of {list}");
    Err(invalid(None, name, &message))
}

/// 400 naming the parameter `name` when `text`, a metadata `what` (`key` or `value`), is
/// longer than `max` characters, in Stripe's words.
fn metadata_length(name: &str, what: &str, text: &str, max: usize) -> Result<(), Answer> {
    let chars = text.chars().count();
    if chars > max {
        let message = format!(
            "Metadata {what}s can have up to {max} characters, but you passed in a {what} that \
             is {chars} characters."
        );
        return Err(invalid(None, name, &message));
    }
    Ok(())
}

/// `metadata[key]` parameters as a JSON object, within Stripe's limits.
///
/// # Errors
/// 400 naming the offending `metadata[…]` parameter.
pub fn metadata(params: &Params) -> Result<serde_json::Value, Answer> {
    let mut map = serde_json::Map::new();
    for (name, value) in params {
        let Some(key) = name
            .strip_prefix("metadata[")
            .and_then(|k| k.strip_suffix(']'))
        else {
            continue;
        };
        metadata_length(name, "key", key, METADATA_KEY_CHARS_MAX)?;
        metadata_length(name, "value", value, METADATA_VALUE_CHARS_MAX)?;
        map.insert(key.to_owned(), serde_json::json!(value));
    }
    if map.len() > METADATA_KEYS_MAX {
        let message = format!(
            "You can have at most {METADATA_KEYS_MAX} keys in metadata, but you passed in {}.",
            map.len()
        );
        return Err(invalid(None, "metadata", &message));
    }
    Ok(serde_json::Value::Object(map))
}

/// Where a list page starts: the newest objects, after a cursor (older) or before one
/// (newer). docs.stripe.com/api/pagination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    Newest,
    StartingAfter(String),
    EndingBefore(String),
}

impl Cursor {
    /// The parameter that named the cursor.
    pub fn param(&self) -> &'static str {
        match self {
            Cursor::EndingBefore(_) => "ending_before",
            _ => "starting_after",
        }
    }
}

/// A list request's paging and `created` window (Unix seconds, inclusive).
#[derive(Debug, Clone)]
pub struct Page {
    pub limit: usize,
    pub cursor: Cursor,
    pub created_min_s: i64,
    pub created_max_s: i64,
}

impl Page {
    pub fn admits_created(&self, created_s: i64) -> bool {
        (self.created_min_s..=self.created_max_s).contains(&created_s)
    }
}

/// Reads `limit` (1–100, default 10), `starting_after` / `ending_before` (at most one) and
/// `created` (`created=N` or `created[gt|gte|lt|lte]=N`).
///
/// # Errors
/// 400 naming the parameter: not an integer, `limit` out of 1–100, both cursors given.
pub fn page(params: &Params) -> Result<Page, Answer> {
    let limit = match integer(params, "limit")? {
        None => LIST_LIMIT_DEFAULT,
        Some(n) if n < 1 => {
            let message = "This value must be greater than or equal to 1.";
            return Err(invalid(Some("parameter_invalid_integer"), "limit", message));
        }
        Some(n) if n > LIST_LIMIT_MAX as i64 => {
            let message = format!("This value must be less than or equal to {LIST_LIMIT_MAX}.");
            return Err(invalid(
                Some("parameter_invalid_integer"),
                "limit",
                &message,
            ));
        }
        Some(n) => usize::try_from(n).unwrap_or(LIST_LIMIT_DEFAULT),
    };
    let after = params.get("starting_after").filter(|c| !c.is_empty());
    let before = params.get("ending_before").filter(|c| !c.is_empty());
    let cursor = match (after, before) {
        (Some(_), Some(_)) => {
            let message = "You may only specify one of these parameters: ending_before, \
                           starting_after.";
            return Err(invalid(None, "ending_before", message));
        }
        (Some(id), None) => Cursor::StartingAfter(id.clone()),
        (None, Some(id)) => Cursor::EndingBefore(id.clone()),
        (None, None) => Cursor::Newest,
    };
    let mut page = Page {
        limit,
        cursor,
        created_min_s: i64::MIN,
        created_max_s: i64::MAX,
    };
    if let Some(exact) = integer(params, "created")? {
        page.created_min_s = exact;
        page.created_max_s = exact;
    }
    if let Some(gt) = integer(params, "created[gt]")? {
        page.created_min_s = page.created_min_s.max(gt.saturating_add(1));
    }
    if let Some(gte) = integer(params, "created[gte]")? {
        page.created_min_s = page.created_min_s.max(gte);
    }
    if let Some(lt) = integer(params, "created[lt]")? {
        page.created_max_s = page.created_max_s.min(lt.saturating_sub(1));
    }
    if let Some(lte) = integer(params, "created[lte]")? {
        page.created_max_s = page.created_max_s.min(lte);
    }
    Ok(page)
}

/// The `expand[N]` paths of a request, each one of `expandable` (the object's fields, one
/// level). On a list (`list`), each must be written `data.{field}`.
///
/// # Errors
/// 400 naming `expand`: "This property cannot be expanded (…)", with Stripe's hint when a
/// list was asked for a bare field.
pub fn expand(params: &Params, expandable: &[&str], list: bool) -> Result<Vec<String>, Answer> {
    let mut fields = Vec::new();
    for (name, path) in params {
        if !accepts("expand[*]", name) {
            continue;
        }
        let field = if list {
            path.strip_prefix("data.")
        } else {
            Some(path.as_str())
        };
        match field {
            Some(field) if expandable.contains(&field) => fields.push(field.to_owned()),
            _ => {
                let mut message = format!("This property cannot be expanded ({path}).");
                if list && expandable.contains(&path.as_str()) {
                    message.push_str(&format!(
                        " You may want to try expanding 'data.{path}' instead."
                    ));
                }
                return Err(invalid(None, "expand", &message));
            }
        }
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(raw: &str) -> Params {
        parse(raw.as_bytes()).unwrap()
    }

    fn refusal(answer: Answer) -> (u16, String, String) {
        let error = &answer.body["error"];
        (
            answer.status,
            error["param"].as_str().unwrap_or_default().to_owned(),
            error["code"].as_str().unwrap_or_default().to_owned(),
        )
    }

    #[test]
    fn both_array_forms_number_their_items() {
        let bare = params("expand[]=a&expand[]=b&x=1");
        let indexed = params("expand[0]=a&expand[1]=b&x=1");
        assert_eq!(bare, indexed);
    }

    #[test]
    fn unknown_parameters_are_named() {
        let accepted = ["amount", "metadata[*]"];
        assert!(known(&params("amount=1&metadata[a]=b"), &accepted).is_ok());
        let refused = known(&params("amount=1&foo=bar"), &accepted).unwrap_err();
        assert_eq!(
            refusal(refused),
            (400, "foo".into(), "parameter_unknown".into())
        );
        let nested = known(&params("metadata[a][b]=c"), &accepted).unwrap_err();
        assert_eq!(refusal(nested).1, "metadata[a][b]");
    }

    #[test]
    fn amounts_follow_the_currency_minimum() {
        assert_eq!(charge_amount(&params("amount=50"), "usd").unwrap(), 50);
        let small = charge_amount(&params("amount=49"), "usd").unwrap_err();
        assert_eq!(
            small.body["error"]["message"],
            "Amount must be at least 0.50 usd"
        );
        assert_eq!(
            refusal(small),
            (400, "amount".into(), "amount_too_small".into())
        );
        assert!(charge_amount(&params("amount=30"), "gbp").is_ok());
        assert!(charge_amount(&params("amount=49"), "jpy").is_err());
        assert!(charge_amount(&params("amount=1"), "isk").is_ok());
        let large = charge_amount(&params("amount=100000000"), "usd").unwrap_err();
        assert_eq!(refusal(large).2, "amount_too_large");
        let text = charge_amount(&params("amount=ten"), "usd").unwrap_err();
        assert_eq!(refusal(text).2, "parameter_invalid_integer");
        let missing = charge_amount(&params(""), "usd").unwrap_err();
        assert_eq!(refusal(missing).2, "parameter_missing");
    }

    #[test]
    fn currencies_are_stripes() {
        assert_eq!(currency(&params("currency=USD")).unwrap(), "usd");
        let refused = currency(&params("currency=zzz")).unwrap_err();
        assert_eq!(refusal(refused), (400, "currency".into(), String::new()));
    }

    #[test]
    fn enums_list_their_values() {
        let reasons = ["duplicate", "fraudulent", "requested_by_customer"];
        let refused = one_of(&params("reason=oops"), "reason", &reasons).unwrap_err();
        assert_eq!(
            refused.body["error"]["message"],
            "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer"
        );
        assert_eq!(
            one_of(&params("reason=duplicate"), "reason", &reasons).unwrap(),
            Some("duplicate")
        );
    }

    #[test]
    fn paging_parameters_are_checked() {
        let page_of = |raw: &str| page(&params(raw));
        assert_eq!(page_of("").unwrap().limit, 10);
        assert_eq!(page_of("limit=100").unwrap().limit, 100);
        for bad in ["limit=0", "limit=101", "limit=abc"] {
            assert_eq!(refusal(page_of(bad).unwrap_err()).1, "limit", "{bad}");
        }
        assert!(page_of("starting_after=a&ending_before=b").is_err());
        let window = page_of("created[gt]=10&created[lt]=20").unwrap();
        assert_eq!((window.created_min_s, window.created_max_s), (11, 19));
        assert_eq!(
            page_of("ending_before=pi_1").unwrap().cursor,
            Cursor::EndingBefore("pi_1".into())
        );
    }

    #[test]
    fn expansions_are_checked_and_lists_need_data() {
        let fields = expand(
            &params("expand[0]=latest_charge"),
            &["latest_charge"],
            false,
        );
        assert_eq!(fields.unwrap(), vec!["latest_charge".to_owned()]);
        let listed = expand(&params("expand[]=data.source"), &["source"], true).unwrap();
        assert_eq!(listed, vec!["source".to_owned()]);
        let bare = expand(&params("expand[]=source"), &["source"], true).unwrap_err();
        assert!(bare.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("data.source"));
        assert!(expand(&params("expand[]=customer"), &["source"], false).is_err());
    }
}
