//! `palier replay`: events in, member documents out (contract.md "The command line").

use std::fmt;

use jiff::Timestamp;
use rustc_hash::FxHashMap;

use crate::document::MemberDocument;
use crate::engine::Engine;
use crate::event::{Event, RejectCode, Rejection, parse_event, sniff_id};
use crate::program::Program;

/// What a replay prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayOutput {
    /// The instant the documents describe (`None`: no event was readable).
    pub as_of: Option<Timestamp>,
    pub documents: Vec<MemberDocument>,
    /// Every rejected event, in input line order.
    pub rejections: Vec<RejectedLine>,
}

/// One rejected input line: `line N: event ID: CODE: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedLine {
    pub line: usize,
    pub event_id: Option<String>,
    pub rejection: Rejection,
}

impl fmt::Display for RejectedLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.event_id.as_deref().unwrap_or("?");
        write!(f, "line {}: event {}: {}", self.line, id, self.rejection)
    }
}

/// A replay's input, parsed: one entry per non-blank line.
pub struct Replay<'a> {
    lines: Vec<ParsedLine<'a>>,
}

struct ParsedLine<'a> {
    number: usize,
    text: &'a str,
    /// The event and the index of its program.
    event: Result<(usize, Event), Rejection>,
}

impl<'a> Replay<'a> {
    /// Parses every non-blank line of a JSON Lines input on its own.
    pub fn parse(programs: &[Program], input: &'a [u8]) -> Replay<'a> {
        let lines = input
            .split(|b| *b == b'\n')
            .enumerate()
            .filter(|(_, bytes)| !bytes.iter().all(u8::is_ascii_whitespace))
            .map(|(index, bytes)| {
                let number = index + 1;
                match std::str::from_utf8(bytes) {
                    Ok(text) => ParsedLine { number, text, event: parse_line(programs, text) },
                    Err(_) => ParsedLine {
                        number,
                        text: "",
                        event: Err(Rejection::new(RejectCode::InvalidJson, "the line is not UTF-8")),
                    },
                }
            })
            .collect();
        Replay { lines }
    }

    /// The latest `at` of the readable events: the default `--as-of`.
    pub fn latest(&self) -> Option<Timestamp> {
        self.lines.iter().filter_map(|l| l.event.as_ref().ok()).map(|(_, e)| e.at).max()
    }

    /// Applies, in order of `at` (ties in line order), the events at or before
    /// `as_of`, then every time rule due at or before it.
    pub fn run(&self, programs: &[Program], as_of: Option<Timestamp>) -> ReplayOutput {
        let mut rejections: Vec<RejectedLine> = Vec::new();
        for line in &self.lines {
            if let Err(rejection) = &line.event {
                rejections.push(RejectedLine {
                    line: line.number,
                    event_id: sniff_id(line.text),
                    rejection: rejection.clone(),
                });
            }
        }
        let Some(as_of) = as_of.or_else(|| self.latest()) else {
            return ReplayOutput { as_of: None, documents: Vec::new(), rejections };
        };

        // Duplicate ids, judged in arrival order (decisions D7).
        let mut first_by_id: FxHashMap<&str, usize> = FxHashMap::default();
        let mut due: Vec<(Timestamp, usize)> = Vec::new();
        for (position, line) in self.lines.iter().enumerate() {
            let Ok((_, event)) = &line.event else { continue };
            if event.at > as_of {
                continue;
            }
            match first_by_id.get(event.id.as_str()) {
                None => {
                    first_by_id.insert(&event.id, position);
                    due.push((event.at, position));
                }
                Some(first) if same_body(self.lines[*first].text, line.text) => {}
                Some(first) => rejections.push(RejectedLine {
                    line: line.number,
                    event_id: Some(event.id.clone()),
                    rejection: Rejection::new(
                        RejectCode::DuplicateConflict,
                        format!(
                            "id: {:?} was first used on line {} with another body",
                            event.id, self.lines[*first].number
                        ),
                    ),
                }),
            }
        }
        due.sort_unstable();

        let mut engines: Vec<Engine<'_>> = programs.iter().map(Engine::new).collect();
        for (_, position) in due {
            let line = &self.lines[position];
            let Ok((program, event)) = &line.event else { continue };
            if let Err(rejection) = engines[*program].apply(event) {
                rejections.push(RejectedLine { line: line.number, event_id: Some(event.id.clone()), rejection });
            }
        }
        let mut documents = Vec::new();
        for engine in &mut engines {
            engine.advance_all(as_of);
            documents.extend(engine.documents(as_of));
        }
        if engines.len() > 1 {
            documents.sort_by(|a, b| (&a.member, &a.program).cmp(&(&b.member, &b.program)));
        }
        rejections.sort_by_key(|r| r.line);
        ReplayOutput { as_of: Some(as_of), documents, rejections }
    }
}

/// Parses one line and checks what needs no state: the event itself and the
/// program it names (which may be left out when only one program is loaded).
fn parse_line(programs: &[Program], text: &str) -> Result<(usize, Event), Rejection> {
    let event = parse_event(text)?;
    let index = match &event.program {
        Some(named) => programs.iter().position(|p| &p.id == named).ok_or_else(|| {
            let loaded: Vec<&str> = programs.iter().map(|p| p.id.as_str()).collect();
            Rejection::new(
                RejectCode::UnknownProgram,
                format!("program: {named:?} is not a program loaded ({})", loaded.join(", ")),
            )
        })?,
        None if programs.len() == 1 => 0,
        None => {
            return Err(Rejection::new(RejectCode::MissingField, "program: required when several programs are loaded"));
        }
    };
    Ok((index, event))
}

/// Two event bodies are the same when they are equal JSON values (key order and
/// white space do not matter).
fn same_body(first: &str, second: &str) -> bool {
    if first == second {
        return true;
    }
    let parse = |text: &str| serde_json::from_str::<serde_json::Value>(text).ok();
    match (parse(first), parse(second)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Replays `input` (JSON Lines) against `programs` up to `as_of` (default: the
/// latest event's `at`).
pub fn replay(programs: &[Program], input: &[u8], as_of: Option<Timestamp>) -> ReplayOutput {
    Replay::parse(programs, input).run(programs, as_of)
}
