//! The load tool every benchmark measures with, palier and its baselines alike: a
//! fixed number of concurrent workers (for HTTP, one keep-alive connection each), each
//! issuing one operation at a time, for a fixed duration after a warm-up or for a fixed
//! number of operations; it reports operations/s and the p50/p99 latency.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;

/// What one call of a worker did.
pub enum Outcome {
    /// One operation, done as expected.
    Done,
    /// One operation that failed (a wrong status, a rejected event, a database error).
    Failed(String),
    /// The worker has nothing left to do (its events are used up).
    Exhausted,
}

/// One client: it runs one operation per call, never two at once.
pub trait Worker: Send + 'static {
    fn call(&mut self) -> impl Future<Output = Outcome> + Send;
}

/// How long to run.
#[derive(Clone, Copy, Debug)]
pub enum Plan {
    /// Operations started during `warmup` are not counted; then those started and
    /// finished within `measure` are.
    Timed { warmup: Duration, measure: Duration },
    /// Exactly this many operations in all (shared by the workers), every one counted.
    Count(u64),
}

/// What a load run measured.
#[derive(Clone, Debug)]
pub struct Report {
    pub workers: usize,
    pub ops: u64,
    pub failed: u64,
    pub seconds: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// Some worker ran out of work before the end (the result is then too low).
    pub exhausted: bool,
    pub first_failure: Option<String>,
}

impl Report {
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 { self.ops as f64 / self.seconds } else { 0.0 }
    }

    pub fn summary(&self) -> String {
        let mut text = format!(
            "{} workers: {} ops in {:.2} s = {:.0}/s, p50 {}, p99 {}, max {}",
            self.workers,
            self.ops,
            self.seconds,
            self.rate(),
            millis(self.p50),
            millis(self.p99),
            millis(self.max)
        );
        if self.failed > 0 {
            text.push_str(&format!(
                ", {} FAILED (first: {})",
                self.failed,
                self.first_failure.as_deref().unwrap_or("?")
            ));
        }
        if self.exhausted {
            text.push_str(", a worker RAN OUT of work");
        }
        text
    }

    /// An error unless every operation succeeded and no worker ran dry.
    pub fn check(&self, what: &str) -> Result<(), String> {
        if self.failed > 0 {
            return Err(format!(
                "{what}: {} of {} operations failed; first: {}",
                self.failed,
                self.ops + self.failed,
                self.first_failure.as_deref().unwrap_or("?")
            ));
        }
        if self.exhausted {
            return Err(format!("{what}: a worker ran out of work before the end; generate more events"));
        }
        if self.ops == 0 {
            return Err(format!("{what}: no operation completed"));
        }
        Ok(())
    }
}

pub fn millis(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

struct WorkerResult {
    latencies: Vec<u64>,
    failed: u64,
    first_failure: Option<String>,
    exhausted: bool,
    first_start: Option<Instant>,
    last_end: Option<Instant>,
}

/// Runs the workers concurrently (one tokio task each) to the plan.
pub async fn run<W: Worker>(workers: Vec<W>, plan: Plan) -> Report {
    let count = workers.len();
    let started = Instant::now();
    let (from, until) = match plan {
        Plan::Timed { warmup, measure } => (started + warmup, Some(started + warmup + measure)),
        Plan::Count(_) => (started, None),
    };
    let budget = Arc::new(AtomicU64::new(match plan {
        Plan::Count(n) => n,
        Plan::Timed { .. } => u64::MAX,
    }));
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|mut worker| {
            let budget = budget.clone();
            tokio::spawn(async move {
                let mut result = WorkerResult {
                    latencies: Vec::with_capacity(1 << 14),
                    failed: 0,
                    first_failure: None,
                    exhausted: false,
                    first_start: None,
                    last_end: None,
                };
                loop {
                    let t0 = Instant::now();
                    if until.is_some_and(|until| t0 >= until) {
                        break;
                    }
                    if budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1)).is_err() {
                        break;
                    }
                    let outcome = worker.call().await;
                    let t1 = Instant::now();
                    let counted = t0 >= from && until.is_none_or(|until| t1 <= until);
                    match outcome {
                        Outcome::Exhausted => {
                            result.exhausted = true;
                            break;
                        }
                        Outcome::Done if counted => {
                            result.latencies.push((t1 - t0).as_nanos() as u64);
                            result.first_start = Some(result.first_start.map_or(t0, |f| f.min(t0)));
                            result.last_end = Some(t1);
                        }
                        Outcome::Failed(why) if counted => {
                            result.failed += 1;
                            result.first_failure.get_or_insert(why);
                        }
                        Outcome::Done | Outcome::Failed(_) => {}
                    }
                }
                result
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let (mut failed, mut exhausted, mut first_failure) = (0, false, None);
    let (mut first_start, mut last_end): (Option<Instant>, Option<Instant>) = (None, None);
    for task in tasks {
        match task.await {
            Ok(r) => {
                latencies.extend(r.latencies);
                failed += r.failed;
                exhausted |= r.exhausted;
                if first_failure.is_none() {
                    first_failure = r.first_failure;
                }
                first_start = match (first_start, r.first_start) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                last_end = last_end.max(r.last_end);
            }
            Err(e) => {
                failed += 1;
                first_failure.get_or_insert(format!("a worker panicked: {e}"));
            }
        }
    }
    latencies.sort_unstable();
    let seconds = match plan {
        Plan::Timed { measure, .. } if !exhausted => measure.as_secs_f64(),
        // A count, or a worker that ran dry: from the first counted start to the last answer.
        _ => match (first_start, last_end) {
            (Some(a), Some(b)) => b.saturating_duration_since(a).as_secs_f64(),
            _ => 0.0,
        },
    };
    Report {
        workers: count,
        ops: latencies.len() as u64,
        failed,
        seconds,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        max: Duration::from_nanos(latencies.last().copied().unwrap_or(0)),
        exhausted,
        first_failure,
    }
}

/// The nearest-rank percentile of sorted nanoseconds.
pub fn percentile(sorted: &[u64], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Duration::from_nanos(sorted[rank - 1])
}

/// The median of a few durations.
pub fn median(values: &mut [Duration]) -> Duration {
    values.sort_unstable();
    if values.is_empty() { Duration::ZERO } else { values[values.len() / 2] }
}

// ---- HTTP ------------------------------------------------------------------------------

/// One HTTP/1.1 keep-alive connection (hyper), one request at a time.
pub struct Http {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl Http {
    pub async fn connect(address: SocketAddr) -> Result<Http, String> {
        let stream =
            tokio::net::TcpStream::connect(address).await.map_err(|e| format!("connecting to {address}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Http { sender, host: address.to_string() })
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), String> {
        self.send_with(method, path, bearer, &[], body).await
    }

    /// Sends one request with extra headers (`Idempotency-Key`, …) and reads the whole answer.
    pub async fn send_with(
        &mut self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), String> {
        let mut request = Request::builder().method(method).uri(path).header(header::HOST, &self.host);
        if let Some(key) = bearer {
            request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if !body.is_empty() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
        self.sender.ready().await.map_err(|e| format!("connection lost: {e}"))?;
        let response = self.sender.send_request(request).await.map_err(|e| format!("request failed: {e}"))?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|e| format!("reading the answer: {e}"))?.to_bytes();
        Ok((status, body))
    }

    pub async fn get(&mut self, path: &str, bearer: Option<&str>) -> Result<(StatusCode, Bytes), String> {
        self.send(Method::GET, path, bearer, Bytes::new()).await
    }

    pub async fn post(&mut self, path: &str, bearer: Option<&str>, body: Bytes) -> Result<(StatusCode, Bytes), String> {
        self.send(Method::POST, path, bearer, body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 0.5), Duration::from_nanos(50));
        assert_eq!(percentile(&values, 0.99), Duration::from_nanos(99));
        assert_eq!(percentile(&[7], 0.99), Duration::from_nanos(7));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    struct Counter(u64);

    impl Worker for Counter {
        async fn call(&mut self) -> Outcome {
            self.0 += 1;
            if self.0 > 50 { Outcome::Exhausted } else { Outcome::Done }
        }
    }

    #[tokio::test]
    async fn a_count_plan_runs_exactly_that_many() {
        let report = run(vec![Counter(0), Counter(0)], Plan::Count(30)).await;
        assert_eq!(report.ops, 30);
        assert!(!report.exhausted);
        let report = run(vec![Counter(0)], Plan::Count(80)).await;
        assert_eq!(report.ops, 50);
        assert!(report.exhausted);
    }
}
