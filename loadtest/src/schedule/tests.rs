use super::*;

const MS: Duration = Duration::from_millis(1);

/// What a simulated open-loop run measured.
#[derive(Debug, Default)]
struct Simulated {
    latencies: Vec<Duration>,
    late: usize,
}

/// Runs `n` requests at `rate` over `connections` connections on a simulated clock, each taking
/// `service(i)`: a connection takes the next claimed request as soon as it is free, never before
/// the request's intended time, exactly as the generator's connection tasks do.
fn simulate(rate: f64, connections: usize, n: u64, service: impl Fn(u64) -> Duration) -> Simulated {
    let schedule = Schedule::new(rate).unwrap();
    let claims = Claims::new(n);
    let mut free_at = vec![Duration::ZERO; connections];
    let mut out = Simulated::default();
    loop {
        // The connection that frees up first claims next.
        let (c, free) = free_at
            .iter()
            .copied()
            .enumerate()
            .min_by_key(|(_, t)| *t)
            .unwrap();
        let Some(i) = claims.claim() else { break };
        let intended = schedule.intended(i);
        let sent = free.max(intended);
        let done = sent + service(i);
        free_at[c] = done;
        out.latencies.push(done - intended);
        out.late += usize::from(is_late(intended, sent));
    }
    out
}

#[test]
fn intended_times_are_evenly_spaced_from_the_start() {
    let s = Schedule::new(1000.0).unwrap();
    assert_eq!(s.intended(0), Duration::ZERO);
    assert_eq!(s.intended(1), MS);
    assert_eq!(s.intended(1000), Duration::from_secs(1));
    let third = Schedule::new(3.0).unwrap();
    assert_eq!(third.intended(1), Duration::from_nanos(333_333_333));
    assert_eq!(third.intended(3), Duration::from_secs(1));
}

#[test]
fn bad_rates_are_refused() {
    for r in [0.0, -5.0, f64::NAN, f64::INFINITY] {
        assert!(Schedule::new(r).is_err(), "{r}");
    }
}

#[test]
fn due_by_agrees_with_intended_at_every_instant() {
    for rate in [1.0, 3.0, 7.5, 1000.0, 123_457.0] {
        let s = Schedule::new(rate).unwrap();
        for step in 0..2_000u64 {
            let e = Duration::from_nanos(step * 997_331);
            let n = s.due_by(e);
            assert!(n >= 1, "request 0 is due at once");
            assert!(s.intended(n - 1) <= e, "rate {rate} at {e:?}");
            assert!(s.intended(n) > e, "rate {rate} at {e:?}");
        }
    }
}

#[test]
fn count_within_is_requests_per_span() {
    let s = Schedule::new(1000.0).unwrap();
    assert_eq!(s.count_within(Duration::from_secs(1)), 1000);
    assert_eq!(s.count_within(Duration::from_secs(2)), 2000);
    assert_eq!(s.count_within(Duration::ZERO), 0);
    assert_eq!(
        Schedule::new(3.0)
            .unwrap()
            .count_within(Duration::from_secs(1)),
        3
    );
    assert_eq!(
        Schedule::new(2.5)
            .unwrap()
            .count_within(Duration::from_secs(1)),
        3
    );
}

#[test]
fn lateness_counts_only_beyond_one_millisecond() {
    let t = Duration::from_millis(10);
    assert_eq!(lateness(t, t - MS), Duration::ZERO);
    assert!(!is_late(t, t));
    assert!(!is_late(t, t + MS));
    assert!(is_late(t, t + MS + Duration::from_micros(1)));
}

#[test]
fn a_fast_server_is_measured_at_its_service_time() {
    let run = simulate(1000.0, 1, 100, |_| Duration::from_micros(500));
    assert_eq!(run.late, 0);
    assert!(run
        .latencies
        .iter()
        .all(|l| *l == Duration::from_micros(500)));
}

#[test]
fn a_slow_server_builds_a_queue_that_shows_in_latency() {
    // One connection, one request per ms, 2 ms each: request k is sent at 2k ms.
    let run = simulate(1000.0, 1, 10, |_| 2 * MS);
    for (k, l) in run.latencies.iter().enumerate() {
        assert_eq!(*l, (k as u32 + 2) * MS, "request {k}");
    }
    // Requests 0 and 1 start at most 1 ms late; 2..9 later than that.
    assert_eq!(run.late, 8);
}

#[test]
fn a_stall_is_charged_to_every_request_scheduled_during_it() {
    // 2 connections, 1 request per ms, 100 µs each; request 10 stalls 20 ms on one connection.
    let run = simulate(1000.0, 2, 40, |i| {
        if i == 10 {
            20 * MS
        } else {
            Duration::from_micros(100)
        }
    });
    assert_eq!(run.latencies[10], 20 * MS);
    // The other connection absorbs the rest: nothing waits, nothing is late.
    assert_eq!(run.late, 0);
    assert_eq!(run.latencies[11], Duration::from_micros(100));

    // With one connection the requests due during the stall wait for it and are late.
    let run = simulate(1000.0, 1, 40, |i| {
        if i == 10 {
            20 * MS
        } else {
            Duration::from_micros(100)
        }
    });
    // Request 11 was due at 11 ms and sent at 30 ms.
    assert_eq!(
        run.latencies[11],
        Duration::from_millis(19) + Duration::from_micros(100)
    );
    // The backlog drains by 900 µs a slot: request k leaves 28.9 ms - 0.9 k late, so 11..=30
    // are late (31 is exactly 1 ms late) and from 33 on requests leave on time.
    assert_eq!(run.late, 20);
    assert_eq!(run.latencies[35], Duration::from_micros(100));
}

#[test]
fn claims_run_out_and_can_be_closed() {
    let c = Claims::new(3);
    assert_eq!(
        (c.claim(), c.claim(), c.claim(), c.claim()),
        (Some(0), Some(1), Some(2), None)
    );
    let c = Claims::new(100);
    assert_eq!(c.claim(), Some(0));
    c.close();
    assert_eq!(c.claim(), None);
}
