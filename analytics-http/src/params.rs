//! Query-string parsing with an allow-list: an unknown or repeated parameter is an error naming
//! it, so a misspelt `grupBy` is reported instead of silently ignored.

use std::collections::BTreeMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::ApiError;

/// The extractor of routes that take no query parameters: any parameter is a 400 naming it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NoParams;

impl<S: Send + Sync> FromRequestParts<S> for NoParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Params::parse(parts.uri.query(), &[]).map(|_| NoParams)
    }
}

/// The parameters of one request, checked against the names a route accepts.
#[derive(Debug, Default)]
pub(crate) struct Params {
    values: BTreeMap<String, String>,
}

impl Params {
    /// Parses `query` (the part of the URI after `?`), accepting only `allowed` names.
    ///
    /// # Errors
    /// 400 naming the first unknown or repeated parameter.
    pub(crate) fn parse(query: Option<&str>, allowed: &[&str]) -> Result<Self, ApiError> {
        let mut values = BTreeMap::new();
        for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            if !allowed.contains(&name.as_ref()) {
                return Err(ApiError::bad_request(
                    name.as_ref(),
                    format!("unknown parameter {name:?}; this route accepts {}", allowed.join(", ")),
                ));
            }
            if values.insert(name.to_string(), value.into_owned()).is_some() {
                return Err(ApiError::bad_request(
                    name.as_ref(),
                    format!("parameter {name:?} is given twice"),
                ));
            }
        }
        Ok(Self { values })
    }

    /// The value of `name`, if given.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The value of the first of `names` given (aliases such as `startDate` / `from`).
    ///
    /// # Errors
    /// 400 when more than one of the aliases is given.
    pub(crate) fn get_alias(&self, names: &[&str]) -> Result<Option<String>, ApiError> {
        let given: Vec<&str> = names.iter().copied().filter(|n| self.values.contains_key(*n)).collect();
        match given.as_slice() {
            [] => Ok(None),
            [one] => Ok(self.get(one).map(str::to_owned)),
            [first, second, ..] => Err(ApiError::bad_request(
                *second,
                format!("{first:?} and {second:?} are the same parameter; give one"),
            )),
        }
    }

    /// A boolean flag: `true`/`false`/`1`/`0`, or present with no value (true).
    ///
    /// # Errors
    /// 400 naming the parameter for any other value.
    pub(crate) fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(false),
            Some("" | "true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(other) => Err(ApiError::bad_request(name, format!("{other:?} is not true or false"))),
        }
    }

    /// An unsigned integer within `range`.
    ///
    /// # Errors
    /// 400 naming the parameter when it is not a number in range.
    pub(crate) fn number(&self, name: &str, range: std::ops::RangeInclusive<u32>) -> Result<Option<u32>, ApiError> {
        let Some(raw) = self.get(name) else {
            return Ok(None);
        };
        match raw.parse::<u32>() {
            Ok(n) if range.contains(&n) => Ok(Some(n)),
            _ => Err(ApiError::bad_request(
                name,
                format!(
                    "{raw:?} is not a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_repeated_and_aliased_parameters_are_named() {
        let unknown = Params::parse(Some("startDate=2024-01-01&grupBy=day"), &["startDate", "groupBy"]).unwrap_err();
        assert_eq!(unknown.field.as_deref(), Some("grupBy"));
        let twice = Params::parse(Some("limit=1&limit=2"), &["limit"]).unwrap_err();
        assert_eq!(twice.field.as_deref(), Some("limit"));
        let both = Params::parse(Some("from=a&startDate=b"), &["startDate", "from"]).unwrap();
        assert_eq!(
            both.get_alias(&["startDate", "from"]).unwrap_err().field.as_deref(),
            Some("from")
        );
        let decoded = Params::parse(Some("userId=a%20b&exact"), &["userId", "exact"]).unwrap();
        assert_eq!(decoded.get("userId"), Some("a b"));
        assert!(decoded.flag("exact").unwrap());
    }

    #[test]
    fn numbers_and_flags_are_checked() {
        let params = Params::parse(Some("limit=0&skipCache=maybe"), &["limit", "skipCache"]).unwrap();
        assert_eq!(
            params.number("limit", 1..=1000).unwrap_err().field.as_deref(),
            Some("limit")
        );
        assert_eq!(
            params.flag("skipCache").unwrap_err().field.as_deref(),
            Some("skipCache")
        );
        let ok = Params::parse(Some("limit=1000"), &["limit"]).unwrap();
        assert_eq!(ok.number("limit", 1..=1000).unwrap(), Some(1000));
    }
}
