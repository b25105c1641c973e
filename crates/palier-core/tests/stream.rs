//! The one-pass replay (`palier_core::stream`) against the general one: it gives
//! exactly the same output whenever it goes through, gives up exactly where it
//! cannot, and `replay` then falls back to the general way.

use palier_core::replay::{ReplayOutput, replay, replay_with_threads};
use palier_core::stream::{Unstreamable, stream_slice_in_pieces};
use palier_core::{Program, RejectCode, Replay};

fn program(name: &str) -> Program {
    let path = format!("{}/../../programs/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("program file");
    Program::parse(&path, &text).expect("valid program")
}

fn general(programs: &[Program], input: &str) -> ReplayOutput {
    Replay::parse_with_threads(programs, input.as_bytes(), 1).run_with_threads(programs, None, 1)
}

fn example(name: &str) -> String {
    std::fs::read_to_string(format!("{}/../../examples/{name}.jsonl", env!("CARGO_MANIFEST_DIR"))).expect("example")
}

fn registration(id: &str, member: &str, at: &str) -> String {
    format!(r#"{{"id":"{id}","type":"member.registered","at":"{at}","member":"{member}","country":"RU"}}"#)
}

fn order(id: &str, member: &str, order: &str, at: &str, price: &str) -> String {
    format!(
        r#"{{"id":"{id}","type":"order.placed","at":"{at}","member":"{member}","order":"{order}","currency":"RUB","lines":[{{"line":"1","sku":"s","brand":"b","category":"audio","quantity":1,"price":"{price}"}}],"payments":[{{"method":"card","amount":"{price}"}}]}}"#
    )
}

#[test]
fn examples_go_through_in_one_pass_with_the_general_output() {
    for name in ["net-a-porter", "mr-porter", "perfone"] {
        let programs = [program(name)];
        let input = example(name);
        let expected = general(&programs, &input);
        assert!(!expected.documents.is_empty());
        for threads in [1, 2, 5] {
            for piece in [1, 300, 1 << 20] {
                let streamed = stream_slice_in_pieces(&programs, input.as_bytes(), None, threads, piece)
                    .unwrap_or_else(|stopped| panic!("{name}: stopped {stopped:?} on {threads} threads"));
                assert_eq!(streamed, expected, "{name}: {threads} threads, pieces of {piece} bytes");
            }
        }
    }
}

#[test]
fn documents_come_by_member_id_then_program_id_whatever_order_programs_are_loaded_in() {
    // Loaded neither in order of id nor its reverse: the one pass gathers members
    // engine by engine, in load order, and must still sort by program id.
    let programs = [program("net-a-porter"), program("perfone"), program("mr-porter")];
    let registered = |id: &str, program: &str, member: &str, country: &str| {
        format!(
            r#"{{"id":"{id}","type":"member.registered","at":"2026-01-10T09:00:00Z","program":"{program}","member":"{member}","country":"{country}"}}"#
        )
    };
    let input = [
        registered("e1", "perfone", "zoe", "RU"),
        registered("e2", "perfone", "m", "RU"),
        registered("e3", "net-a-porter", "m", "GB"),
        registered("e4", "mr-porter", "m", "GB"),
        registered("e5", "mr-porter", "a", "GB"),
        registered("e6", "net-a-porter", "zoe", "GB"),
    ]
    .join("\n");
    let expected = general(&programs, &input);
    let order: Vec<(&str, &str)> = expected.documents.iter().map(|d| (d.member.as_str(), d.program.as_str())).collect();
    assert_eq!(
        order,
        [
            ("a", "mr-porter"),
            ("m", "mr-porter"),
            ("m", "net-a-porter"),
            ("m", "perfone"),
            ("zoe", "net-a-porter"),
            ("zoe", "perfone")
        ]
    );
    for threads in [1, 2, 5] {
        let streamed = stream_slice_in_pieces(&programs, input.as_bytes(), None, threads, 1 << 20).expect("in order");
        assert_eq!(streamed, expected, "{threads} threads");
    }
}

#[test]
fn a_line_written_late_within_a_piece_or_the_hold_back_is_put_in_order() {
    let programs = [program("perfone")];
    let mut lines = vec![
        registration("e-1", "anna", "2026-01-10T09:00:00Z"),
        registration("e-2", "boris", "2026-01-10T10:00:00Z"),
        order("e-4", "anna", "o-2", "2026-01-12T12:00:00Z", "1000.00"),
    ];
    // Written after a later line: held back, then applied in order of `at`.
    lines.push(order("e-3", "boris", "o-1", "2026-01-11T12:00:00Z", "2000.00"));
    let input = lines.join("\n") + "\n";
    let expected = general(&programs, &input);
    let streamed = stream_slice_in_pieces(&programs, input.as_bytes(), None, 1, 1 << 20).expect("one piece");
    assert_eq!(streamed, expected);
}

#[test]
fn an_event_earlier_than_one_applied_stops_the_pass_and_replay_falls_back() {
    let programs = [program("perfone")];
    let lines = [
        registration("e-1", "anna", "2026-01-10T09:00:00Z"),
        order("e-2", "anna", "o-1", "2026-01-12T12:00:00Z", "1000.00"),
        registration("e-3", "boris", "2026-01-13T10:00:00Z"),
        // Two days earlier than the line before, in a later piece.
        order("e-4", "anna", "o-2", "2026-01-11T12:00:00Z", "2000.00"),
    ];
    let input = lines.join("\n") + "\n";
    let stopped = stream_slice_in_pieces(&programs, input.as_bytes(), None, 1, 1).expect_err("out of order");
    assert_eq!(stopped, Unstreamable::OutOfOrder { line: 4 });
    let expected = general(&programs, &input);
    assert_eq!(replay(&programs, input.as_bytes(), None), expected);
    assert_eq!(replay_with_threads(&programs, input.as_bytes(), None, 3), expected);
    // Both orders count, in order of `at`, whichever way was taken.
    assert!(expected.rejections.is_empty(), "{:?}", expected.rejections);
}

#[test]
fn one_order_id_placed_by_members_of_two_shards_stops_the_pass() {
    let programs = [program("perfone")];
    let mut lines: Vec<String> = Vec::new();
    for n in 0..8 {
        lines.push(registration(&format!("r-{n}"), &format!("m-{n}"), "2026-01-10T09:00:00Z"));
    }
    for n in 0..8 {
        lines.push(order(&format!("o-{n}"), &format!("m-{n}"), "o-shared", "2026-01-12T12:00:00Z", "1000.00"));
    }
    let input = lines.join("\n") + "\n";
    let expected = general(&programs, &input);
    // The first placement wins; the seven others are refused.
    let refused: Vec<_> = expected.rejections.iter().map(|r| r.rejection.code).collect();
    assert_eq!(refused, vec![RejectCode::OrderExists; 7]);
    match stream_slice_in_pieces(&programs, input.as_bytes(), None, 8, 1 << 20) {
        Err(Unstreamable::SharedOrder { line }) => assert!(line > 9, "line {line}"),
        other => panic!("eight members over eight shards all in one shard? {other:?}"),
    }
    // On one shard the engine settles it itself.
    assert_eq!(stream_slice_in_pieces(&programs, input.as_bytes(), None, 1, 1).expect("one shard"), expected);
    assert_eq!(replay_with_threads(&programs, input.as_bytes(), None, 8), expected);
}

#[test]
fn repeated_ids_across_pieces_are_settled_as_the_general_replay_does() {
    let programs = [program("perfone")];
    let first = order("e-2", "anna", "o-1", "2026-01-12T12:00:00Z", "1000.00");
    let lines = [
        registration("e-1", "anna", "2026-01-10T09:00:00Z"),
        first.clone(),
        // The same body with other white space: nothing happens.
        first.replace("\":", "\": "),
        // The same id with another body: refused, naming line 2.
        order("e-2", "anna", "o-9", "2026-01-13T12:00:00Z", "5000.00"),
    ];
    let input = lines.join("\n") + "\n";
    let expected = general(&programs, &input);
    assert_eq!(expected.rejections.len(), 1);
    assert_eq!(expected.rejections[0].rejection.code, RejectCode::DuplicateConflict);
    assert!(expected.rejections[0].rejection.message.contains("line 2"));
    for threads in [1, 2] {
        let streamed = stream_slice_in_pieces(&programs, input.as_bytes(), None, threads, 1).expect("in order");
        assert_eq!(streamed, expected);
    }
}

#[test]
fn ids_sharing_a_key_of_the_first_use_table_are_told_apart() {
    // `e-0027299` and `e-0048676` share the 32-bit key the one pass keeps first uses
    // by (the table's unit tests hold them to it): each is its own event, and each
    // repeat is settled against its own first line.
    let programs = [program("perfone")];
    let (a, b) = ("e-0027299", "e-0048676");
    let first_a = order(a, "anna", "o-1", "2026-01-12T12:00:00Z", "1000.00");
    let first_b = order(b, "anna", "o-2", "2026-01-12T13:00:00Z", "2000.00");
    let lines = [
        registration("e-1", "anna", "2026-01-10T09:00:00Z"),
        first_a.clone(),
        first_b.clone(),
        // Exact repeats: nothing happens.
        first_b,
        first_a,
        // Other bodies: refused, each naming its own first line.
        order(b, "anna", "o-3", "2026-01-13T12:00:00Z", "5000.00"),
        order(a, "anna", "o-4", "2026-01-13T13:00:00Z", "6000.00"),
    ];
    let input = lines.join("\n") + "\n";
    let expected = general(&programs, &input);
    let refused: Vec<(usize, &str)> =
        expected.rejections.iter().map(|r| (r.line, r.rejection.message.as_str())).collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused[0].0 == 6 && refused[0].1.contains("line 3"), "{refused:?}");
    assert!(refused[1].0 == 7 && refused[1].1.contains("line 2"), "{refused:?}");
    // Both orders count: 5 % of 1000 + 2000 roubles at the first level.
    assert_eq!(expected.documents[0].points.as_ref().map(|p| p.pending), Some(150));
    for threads in [1, 2] {
        for piece in [1, 1 << 20] {
            let streamed = stream_slice_in_pieces(&programs, input.as_bytes(), None, threads, piece).expect("in order");
            assert_eq!(streamed, expected, "{threads} threads, pieces of {piece} bytes");
        }
    }
}
