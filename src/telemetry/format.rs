//! The log line format: one JSON object per line (or one text line), written straight from
//! the event's fields. The request id comes from the task-local the request runs in, so no
//! span is created per request and nothing is formatted twice: tracing-subscriber's JSON
//! layer stores each span's fields as JSON text and parses it back for every event, which cost
//! more than the rest of a request's logging together.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// One line per event, as JSON (`LOG_FORMAT=json`) or text (`pretty`).
#[derive(Debug, Clone, Copy)]
pub struct LineFormat {
    /// JSON objects rather than text.
    pub json: bool,
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let now = Timestamp(std::time::SystemTime::now());
        let span = ctx.lookup_current().map(|span| span.name());
        let request_id = super::request_id::current();
        let mut line = String::with_capacity(256);
        if self.json {
            line.push_str("{\"timestamp\":\"");
            now.push_to(&mut line);
            line.push_str("\",\"level\":\"");
            line.push_str(meta.level().as_str());
            line.push('"');
            let mut fields = JsonFields { line: &mut line };
            event.record(&mut fields);
            push_json_field(&mut line, "target", meta.target());
            if let Some(span) = span {
                push_json_field(&mut line, "span", span);
            }
            if let Some(id) = &request_id {
                push_json_field(&mut line, "request_id", id);
            }
            line.push('}');
        } else {
            let level = meta.level();
            now.push_to(&mut line);
            if writer.has_ansi_escapes() {
                let _ = write!(line, " {}{level:>5}\x1b[0m ", colour(*level));
            } else {
                let _ = write!(line, " {level:>5} ");
            }
            let _ = write!(line, "{}:", meta.target());
            let mut fields = TextFields {
                line: &mut line,
                message: None,
            };
            event.record(&mut fields);
            let message = fields.message.take().unwrap_or_default();
            let _ = write!(line, " {message}");
            if let Some(id) = &request_id {
                let _ = write!(line, " request_id={id}");
            }
        }
        line.push('\n');
        writer.write_str(&line)
    }
}

/// A UTC time written as RFC 3339 with microseconds (`2026-11-25T22:33:17.123456Z`), by hand:
/// a general date formatter costs more than the rest of the line.
struct Timestamp(std::time::SystemTime);

impl Timestamp {
    /// Appends the time to `line` (no formatter: this runs for every log line).
    fn push_to(&self, line: &mut String) {
        let since = self
            .0
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let secs = since.as_secs();
        let (days, in_day) = (secs / 86_400, secs % 86_400);
        let (year, month, day) = civil_from_days(days);
        // `YYYY-MM-DDTHH:MM:SS.uuuuuuZ`, digits written in place.
        let mut text = *b"0000-00-00T00:00:00.000000Z";
        let mut put = |at: usize, width: usize, mut value: u64| {
            for digit in text[at..at + width].iter_mut().rev() {
                *digit = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, in_day / 3600);
        put(14, 2, in_day / 60 % 60);
        put(17, 2, in_day % 60);
        put(20, 6, u64::from(since.subsec_micros()));
        line.push_str(std::str::from_utf8(&text).unwrap_or("0000-00-00T00:00:00.000000Z"));
    }
}

/// Year, month and day of the day `days` after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

fn colour(level: Level) -> &'static str {
    match level {
        Level::ERROR => "\x1b[31m",
        Level::WARN => "\x1b[33m",
        Level::INFO => "\x1b[32m",
        _ => "\x1b[2m",
    }
}

/// Appends `,"name":"value"` with `value` escaped for JSON.
fn push_json_field(line: &mut String, name: &str, value: &str) {
    push_json_name(line, name);
    push_json_string(line, value);
}

/// Appends `,"name":` (field names are identifiers: nothing to escape).
fn push_json_name(line: &mut String, name: &str) {
    line.push_str(",\"");
    line.push_str(name);
    line.push_str("\":");
}

/// Appends `value` in decimal digits, without a formatter.
fn push_decimal(line: &mut String, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    line.push_str(std::str::from_utf8(&digits[at..]).unwrap_or("0"));
}

/// Appends `value` as a JSON string.
fn push_json_string(line: &mut String, value: &str) {
    line.push('"');
    push_json_escaped(line, value);
    line.push('"');
}

/// The bytes a JSON string carries as they are (printable ASCII but `"` and `\`), looked up
/// rather than compared: every byte of every log line passes this test.
static PLAIN: [bool; 256] = {
    let mut plain = [false; 256];
    let mut b = b' ';
    while b <= b'~' {
        plain[b as usize] = b != b'"' && b != b'\\';
        b += 1;
    }
    plain
};

/// Appends `value` escaped for the inside of a JSON string.
fn push_json_escaped(line: &mut String, value: &str) {
    // Most values are plain ASCII: copied whole, without a pass per character.
    if value.bytes().all(|b| PLAIN[usize::from(b)]) {
        line.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '"' => line.push_str("\\\""),
            '\\' => line.push_str("\\\\"),
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            '\t' => line.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(line, "\\u{:04x}", u32::from(c));
            }
            c => line.push(c),
        }
    }
}

/// Escapes for JSON whatever is written through it.
struct JsonEscaped<'a>(&'a mut String);

impl fmt::Write for JsonEscaped<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        push_json_escaped(self.0, text);
        Ok(())
    }
}

struct JsonFields<'a> {
    line: &'a mut String,
}

impl Visit for JsonFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        push_json_field(self.line, field.name(), value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        push_json_name(self.line, field.name());
        // Escaped as it is written, without a string of its own (the message is one of these).
        self.line.push('"');
        let _ = write!(JsonEscaped(self.line), "{value:?}");
        self.line.push('"');
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        push_json_name(self.line, field.name());
        push_decimal(self.line, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        push_json_name(self.line, field.name());
        if value < 0 {
            self.line.push('-');
        }
        push_decimal(self.line, value.unsigned_abs());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            let _ = write!(self.line, ",\"{}\":{value:.3}", field.name());
        } else {
            push_json_field(self.line, field.name(), &value.to_string());
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        let _ = write!(self.line, ",\"{}\":{value}", field.name());
    }
}

struct TextFields<'a> {
    line: &'a mut String,
    message: Option<String>,
}

impl Visit for TextFields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = Some(format!("{value:?}"));
        } else {
            let _ = write!(self.line, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            let _ = write!(self.line, " {}={value}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_in_utc() {
        let text = |at| {
            let mut line = String::new();
            Timestamp(at).push_to(&mut line);
            line
        };
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_795_645_997_123_456);
        assert_eq!(text(at), "2026-11-25T22:33:17.123456Z");
        assert_eq!(
            text(std::time::UNIX_EPOCH + std::time::Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000000Z"
        );
    }

    #[test]
    fn numbers_are_written_in_decimal() {
        let mut line = String::new();
        for value in [0, 7, 10, 1_234_567_890, u64::MAX] {
            push_decimal(&mut line, value);
            line.push(' ');
        }
        assert_eq!(line, "0 7 10 1234567890 18446744073709551615 ");
    }

    #[test]
    fn debug_values_are_escaped_as_they_are_written() {
        let mut line = String::new();
        let _ = write!(JsonEscaped(&mut line), "{:?}", "say \"hi\"\n");
        assert_eq!(line, r#"\"say \\\"hi\\\"\\n\""#);
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut line = String::new();
        push_json_string(&mut line, "a\"b\\c\nd\u{1}");
        assert_eq!(line, r#""a\"b\\c\nd\u0001""#);
        let parsed: String = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(parsed, "a\"b\\c\nd\u{1}");
    }
}
