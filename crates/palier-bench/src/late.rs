//! `late`: one member with 1 000 events among many members. Posting one late event for
//! it (at an instant between its 990th and 991st events) against posting one in-order
//! event (after its latest), over HTTP to palier on SQLite; the median of many
//! repetitions of each, alternating.
//!
//! Each repetition uses a member of its own (all built alike, with 1 000 events each),
//! so every late event lands among exactly the same history: 10 later events. The
//! same two operations are also timed inside the engine alone
//! (`palier_core::history::MemberHistory::add`), without HTTP and the commit.

use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use palier_core::history::MemberHistory;
use palier_core::sales::Sales;
use serde_json::json;

use crate::Common;
use crate::fixtures::{ADMIN_KEY, Events, Palier, ResultRow, TempSqlite, accepted_one, thousands};
use crate::load::{Http, median};

const PROGRAM: &str = "net-a-porter";

/// A heavy member: `count` events (a registration, then orders placed every 34 hours,
/// each delivered 6 hours later), with the instant of each.
struct Heavy {
    member: String,
    lines: Vec<String>,
    times: Vec<Timestamp>,
}

fn start() -> Timestamp {
    Timestamp::from_second(1_675_245_600).unwrap_or(Timestamp::UNIX_EPOCH) // 2023-02-01T10:00:00Z
}

fn placed(id: &str, member: &str, order: &str, at: Timestamp) -> String {
    json!({
        "id": id, "type": "order.placed", "at": at.to_string(), "program": PROGRAM, "member": member,
        "order": order, "currency": "GBP", "channel": "web",
        "lines": [{"line": "1", "sku": "NAP-000001", "brand": "Bench", "category": "clothing", "quantity": 1, "price": "120.00"}],
        "payments": [{"method": "card", "amount": "120.00"}],
    })
    .to_string()
}

fn heavy(k: usize, count: usize) -> Heavy {
    let member = format!("heavy-{k:05}");
    let at = |hours: i64| start() + SignedDuration::from_hours(hours);
    let mut lines = Vec::with_capacity(count);
    let mut times = Vec::with_capacity(count);
    lines.push(
        json!({"id": format!("{member}-e0"), "type": "member.registered", "at": start().to_string(),
               "program": PROGRAM, "member": member, "country": "GB"})
        .to_string(),
    );
    times.push(start());
    for i in 1..count as i64 {
        let j = (i + 1) / 2;
        let order = format!("{member}-o{j}");
        let id = format!("{member}-e{i}");
        if i % 2 == 1 {
            times.push(at(j * 34));
            lines.push(placed(&id, &member, &order, at(j * 34)));
        } else {
            times.push(at(j * 34 + 6));
            lines.push(
                json!({"id": id, "type": "order.delivered", "at": at(j * 34 + 6).to_string(), "program": PROGRAM,
                       "order": order})
                .to_string(),
            );
        }
    }
    Heavy { member, lines, times }
}

impl Heavy {
    /// An order placed between the member's (count-10)th and (count-9)th events
    /// (990th and 991st of 1 000); `tag` keeps ids fresh.
    fn late(&self, tag: &str) -> String {
        let n = self.times.len();
        let (before, after) = (self.times[n - 11], self.times[n - 10]);
        let at = before + before.duration_until(after) / 2;
        placed(&format!("{}-late-{tag}", self.member), &self.member, &format!("{}-late-o-{tag}", self.member), at)
    }

    /// An order placed an hour after the member's latest event.
    fn in_order(&self, tag: &str) -> String {
        let at = self.times[self.times.len() - 1] + SignedDuration::from_hours(1);
        placed(&format!("{}-next-{tag}", self.member), &self.member, &format!("{}-next-o-{tag}", self.member), at)
    }
}

async fn post_timed(http: &mut Http, body: String) -> Result<Duration, String> {
    let started = Instant::now();
    let (status, answer) = http.post("/v1/events", Some(ADMIN_KEY), body.into()).await?;
    let elapsed = started.elapsed();
    if status != 200 || !accepted_one(&answer) {
        return Err(format!(
            "late benchmark: an event was not accepted: {status}: {}",
            String::from_utf8_lossy(&answer)
        ));
    }
    Ok(elapsed)
}

/// The same two additions inside the engine: `MemberHistory::add` on a copy of a
/// 1 000-event history, late and in order.
fn core_only(common: &Common, per_member: usize, reps: usize) -> Result<(Duration, Duration), String> {
    let program = common.programs.iter().find(|p| p.id == PROGRAM).ok_or("net-a-porter is not loaded")?;
    let member = heavy(usize::MAX / 2, per_member);
    let mut history = MemberHistory::new();
    for (seq, line) in member.lines.iter().enumerate() {
        let event = palier_core::parse_event(line).map_err(|e| e.to_string())?;
        history.add(program, &Sales::new(), event, seq as u64).map_err(|e| format!("heavy member: {e}"))?;
    }
    let (mut late, mut in_order) = (Vec::with_capacity(reps), Vec::with_capacity(reps));
    for r in 0..reps {
        let tag = r.to_string();
        for (text, times) in [(member.late(&tag), &mut late), (member.in_order(&tag), &mut in_order)] {
            let event = palier_core::parse_event(&text).map_err(|e| e.to_string())?;
            let mut copy = history.clone();
            let started = Instant::now();
            copy.add(program, &Sales::new(), event, 1_000_000 + r as u64).map_err(|e| format!("core add: {e}"))?;
            times.push(started.elapsed());
            drop(copy);
        }
    }
    Ok((median(&mut late), median(&mut in_order)))
}

pub async fn late(common: &Common, members: u32, reps: usize, per_member: usize) -> Result<Vec<ResultRow>, String> {
    if per_member < 12 {
        return Err("--events-per-member: at least 12".into());
    }
    let fillers = Events::generate(members, 1)?;
    let place = TempSqlite::new("palier.db")?;
    let palier = Palier::start(&place.path, common.programs.clone(), true).await?;
    let started = Instant::now();
    palier.import(&fillers.rows, 5000).await?;
    drop(fillers);
    let heavies: Vec<Heavy> = (0..reps).map(|k| heavy(k, per_member)).collect();
    let lines: Vec<&str> = heavies.iter().flat_map(|h| h.lines.iter().map(String::as_str)).collect();
    palier.import(&Events::from_lines(lines.into_iter())?.rows, 5000).await?;
    eprintln!(
        "  preloaded {} members and {reps} members of {per_member} events each in {:.1} s",
        thousands(u64::from(members)),
        started.elapsed().as_secs_f64()
    );
    let result = async {
        let mut http = Http::connect(palier.address).await?;
        let (mut late, mut in_order) = (Vec::with_capacity(reps), Vec::with_capacity(reps));
        for (k, member) in heavies.iter().enumerate() {
            let tag = format!("r{k}");
            if k % 2 == 0 {
                late.push(post_timed(&mut http, member.late(&tag)).await?);
                in_order.push(post_timed(&mut http, member.in_order(&tag)).await?);
            } else {
                in_order.push(post_timed(&mut http, member.in_order(&tag)).await?);
                late.push(post_timed(&mut http, member.late(&tag)).await?);
            }
        }
        Ok::<_, String>((median(&mut late), median(&mut in_order)))
    }
    .await;
    palier.stop().await;
    let (late, in_order) = result?;
    eprintln!("  HTTP POST, median of {reps}: late {late:?}, in order {in_order:?}");
    let (core_late, core_in_order) = core_only(common, per_member, reps.max(201))?;
    eprintln!("  engine only, median of {}: late {core_late:?}, in order {core_in_order:?}", reps.max(201));
    let ratio = late.as_secs_f64() / in_order.as_secs_f64();
    let core_ratio = core_late.as_secs_f64() / core_in_order.as_secs_f64();
    Ok(vec![
        ResultRow {
            measure: format!(
                "late: POST late event ({per_member}-event member, {} members), median of {reps} (vs in-order)",
                thousands(u64::from(members) + reps as u64)
            ),
            palier: format!("{:.2} ms", late.as_secs_f64() * 1e3),
            baseline: format!("{:.2} ms", in_order.as_secs_f64() * 1e3),
            ratio: format!("{ratio:.2}x"),
            goal: "<= 5x".into(),
            met: Some(ratio <= 5.0),
        },
        ResultRow {
            measure: "late: the engine alone (MemberHistory::add, no HTTP, no commit)".into(),
            palier: format!("{:.1} us", core_late.as_secs_f64() * 1e6),
            baseline: format!("{:.1} us", core_in_order.as_secs_f64() * 1e6),
            ratio: format!("{core_ratio:.1}x"),
            goal: "-".into(),
            met: None,
        },
    ])
}
