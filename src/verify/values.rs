//! Scan values as the checks read them, and as reports show them.

use deltalake::arrow::datatypes::DataType;
use deltalake::datafusion::common::ScalarValue;
use serde_json::{Value, json};

pub(crate) fn trim_float(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// A scalar as f64, if it is a number.
pub fn as_f64(v: &ScalarValue) -> Option<f64> {
    if v.is_null() {
        return None;
    }
    match v.cast_to(&DataType::Float64).ok()? {
        ScalarValue::Float64(Some(f)) => Some(f),
        _ => None,
    }
}

/// Whether a value is a date or a time, shown as such rather than as a number.
pub(crate) fn is_temporal(v: &ScalarValue) -> bool {
    matches!(
        v.data_type(),
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..)
    )
}

/// A value as people read it: dates and times in ISO 8601 (with the column's zone, `Z` for
/// UTC), everything else as DataFusion prints it.
pub(crate) fn shown(v: &ScalarValue) -> String {
    if !is_temporal(v) || v.is_null() {
        return v.to_string();
    }
    use deltalake::arrow::util::display::{ArrayFormatter, FormatOptions};
    v.to_array()
        .ok()
        .and_then(|array| {
            ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())
                .ok()
                .map(|f| f.value(0).to_string())
        })
        .unwrap_or_else(|| v.to_string())
}

pub(crate) fn as_u64(v: &ScalarValue) -> u64 {
    as_f64(v).map_or(0, |f| f.max(0.0) as u64)
}

/// A scalar as JSON: integers stay integers, other numbers become JSON numbers, dates and times
/// ISO 8601 text, the rest text.
pub(crate) fn to_json(v: &ScalarValue) -> Value {
    match v {
        _ if v.is_null() => Value::Null,
        _ if is_temporal(v) => json!(shown(v)),
        ScalarValue::Int8(Some(i)) => json!(i),
        ScalarValue::Int16(Some(i)) => json!(i),
        ScalarValue::Int32(Some(i)) => json!(i),
        ScalarValue::Int64(Some(i)) => json!(i),
        ScalarValue::UInt8(Some(i)) => json!(i),
        ScalarValue::UInt16(Some(i)) => json!(i),
        ScalarValue::UInt32(Some(i)) => json!(i),
        ScalarValue::UInt64(Some(i)) => json!(i),
        _ => match as_f64(v) {
            Some(f) => json!(f),
            None => json!(v.to_string()),
        },
    }
}
