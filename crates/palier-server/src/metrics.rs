//! Prometheus metrics: events by outcome, request latencies, queue depth.

use std::sync::atomic::{AtomicBool, Ordering};

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use crate::live::Decision;

pub struct Metrics {
    registry: Registry,
    events: IntCounterVec,
    pub latency: HistogramVec,
    pub queue_depth: IntGauge,
    pub members: IntGauge,
    /// Notifications recorded in the outbox.
    pub notifications: IntCounter,
    /// Sends of notifications, by destination kind (webhook, nats) and outcome
    /// (delivered, failed, dead).
    pub deliveries: IntCounterVec,
    /// Events read from NATS, by outcome and reason code.
    pub bus_events: IntCounterVec,
    broken: AtomicBool,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let events = IntCounterVec::new(
            Opts::new("palier_events_total", "Events received, by outcome and reason code"),
            &["outcome", "code"],
        )
        .expect("static metric definition is valid");
        let latency = HistogramVec::new(
            HistogramOpts::new("palier_http_request_duration_seconds", "HTTP request latency")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]),
            &["route", "status"],
        )
        .expect("static metric definition is valid");
        let queue_depth = IntGauge::new("palier_ingest_queue_depth", "Events waiting for the ingest writer")
            .expect("static metric definition is valid");
        let members =
            IntGauge::new("palier_members", "Members held in memory").expect("static metric definition is valid");
        let notifications = IntCounter::new("palier_notifications_total", "Notifications recorded in the outbox")
            .expect("static metric definition is valid");
        let deliveries = IntCounterVec::new(
            Opts::new("palier_notification_deliveries_total", "Notification sends, by destination kind and outcome"),
            &["destination", "outcome"],
        )
        .expect("static metric definition is valid");
        let bus_events = IntCounterVec::new(
            Opts::new("palier_bus_events_total", "Events read from NATS JetStream, by outcome and reason code"),
            &["outcome", "code"],
        )
        .expect("static metric definition is valid");
        for collector in [
            Box::new(events.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(queue_depth.clone()),
            Box::new(members.clone()),
            Box::new(notifications.clone()),
            Box::new(deliveries.clone()),
            Box::new(bus_events.clone()),
        ] {
            registry.register(collector).expect("each metric is registered once");
        }
        Metrics {
            registry,
            events,
            latency,
            queue_depth,
            members,
            notifications,
            deliveries,
            bus_events,
            broken: AtomicBool::new(false),
        }
    }

    pub fn record(&self, decisions: &[Vec<Decision>]) {
        for decision in decisions.iter().flatten() {
            match decision {
                Decision::Accepted => self.events.with_label_values(&["accepted", ""]).inc(),
                Decision::Duplicate => self.events.with_label_values(&["duplicate", ""]).inc(),
                Decision::Rejected(r) => self.events.with_label_values(&["rejected", r.code.as_str()]).inc(),
            }
        }
    }

    pub fn record_rejected(&self, code: &str) {
        self.events.with_label_values(&["rejected", code]).inc();
    }

    pub fn set_broken(&self) {
        self.broken.store(true, Ordering::SeqCst);
    }

    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::SeqCst)
    }

    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}
