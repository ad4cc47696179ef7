//! Malformed input is a clear error with a position, never a panic.

use checker::import::{Format, parse_history};

fn error_of(text: &str, format: Format) -> String {
    parse_history(text, format).unwrap_err().to_string()
}

#[test]
fn truncated_edn() {
    let message = error_of("[{:process 0, :type :invoke, :f :read, :value nil}\n {:process 0, :type :ok", Format::Edn);
    assert!(message.starts_with("line 2, column "), "{message}");
    assert!(message.contains("end of input"), "{message}");
}

#[test]
fn unknown_type() {
    let message = error_of("{:process 0, :type :invoked, :f :read, :value nil}", Format::Edn);
    assert_eq!(message, "line 1, column 1: unknown :type :invoked, expected :invoke, :ok, :fail or :info");
}

#[test]
fn completion_with_nothing_outstanding() {
    let text = "{:process 0, :type :invoke, :f :read}\n{:process 0, :type :ok, :f :read, :value 1}\n{:process 0, :type :ok, :f :read, :value 1}";
    let message = error_of(text, Format::Edn);
    assert_eq!(message, "line 3, column 1: a :ok completion of :read by process 0, which has no operation outstanding");
}

#[test]
fn nemesis_info_is_not_an_operation() {
    let text = "{:process :nemesis, :type :info, :f :start}\n{:process 0, :type :invoke, :f :read}\n{:process 0, :type :info, :f :read}\n{:process 0, :type :info, :f :read}";
    let history = parse_history(text, Format::Edn).unwrap();
    assert_eq!(history.ops.len(), 1);
    assert_eq!(history.entries, 4);
}

#[test]
fn a_fifty_megabyte_line() {
    // One line of 50 MB: an unterminated string, then an endless vector.
    let mut text = String::from("[{:process 0, :type :invoke, :f :write, :value \"");
    text.push_str(&"x".repeat(50 << 20));
    let message = error_of(&text, Format::Edn);
    assert!(message.starts_with("line 1, column "), "{}", &message[..80.min(message.len())]);
    let deep = format!("[{}", "[".repeat(50 << 20));
    let message = error_of(&deep, Format::Edn);
    assert!(message.contains("nesting"), "{message}");
    let wide = format!("[{}", "1 ".repeat(25 << 20));
    let message = error_of(&wide, Format::Edn);
    assert!(message.contains("expected an op map"), "{message}");
}

#[test]
fn jepsen_log_errors() {
    let message = error_of("INFO  jepsen.util - 0\t:invokd\t:read\tnil", Format::JepsenLog);
    assert!(message.starts_with("line 1, column 21: unknown type ':invokd'"), "{message}");
    let message = error_of("INFO  jepsen.util - 0\t:invoke\t:cas\t[1 2", Format::JepsenLog);
    assert!(message.contains("bad value"), "{message}");
}

#[test]
fn json_lines_errors() {
    let message =
        error_of("{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n{\"process\":0,\"type\":", Format::Json);
    assert!(message.starts_with("line 2, column "), "{message}");
    let message = error_of(
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n{\"process\":0,\"type\":\"nope\",\"f\":\"read\"}",
        Format::Json,
    );
    assert_eq!(message, "line 2, column 1: unknown :type \"nope\", expected :invoke, :ok, :fail or :info");
}

#[test]
fn json_lines_round_trip() {
    let events = checker::generate::generate(&checker::generate::Config {
        shape: checker::generate::Shape::Kv { keys: 3 },
        ops: 50,
        clients: 4,
        info_rate: 0.1,
        seed: 9,
    });
    let text = checker::import::to_json_lines(&events);
    let history = parse_history(&text, Format::Json).unwrap();
    assert_eq!(history.ops.len(), 50);
    assert_eq!(history.entries, events.len());
}
