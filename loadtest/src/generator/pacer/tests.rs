use super::*;
use std::rc::Rc;
use std::task::Waker;
use std::time::Duration;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Tasks waiting for `indices` (each registered before the next) against a pacer on one
/// thread, as on a generator thread. Returns, in release order, each index and whether the last
/// request was already released with it; checks that none was released before its time.
fn paced(rate: f64, total: u64, indices: &[u64]) -> Vec<(u64, bool)> {
    let rt = runtime();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let gate = Rc::new(Gate::default());
        let timer = Timer::new().unwrap();
        let start = Instant::now();
        let schedule = Schedule::new(rate).unwrap();
        let g = gate.clone();
        let pacer =
            tokio::task::spawn_local(async move { pace(&g, &timer, start, schedule, total).await });
        let seen = Rc::new(std::cell::RefCell::new(Vec::new()));
        let mut tasks = Vec::new();
        for &i in indices {
            let (g, s) = (gate.clone(), seen.clone());
            tasks.push(tokio::task::spawn_local(async move {
                g.wait(i).await;
                // Whether a later request (the last) was already out when this one was.
                let later_out = g.is_released(total - 1);
                s.borrow_mut().push((i, Instant::now(), later_out));
            }));
            // Let the task register before the next one does.
            tokio::task::yield_now().await;
        }
        for t in tasks {
            t.await.unwrap();
        }
        pacer.await.unwrap().unwrap();
        let seen = seen.borrow();
        for &(i, at, _) in seen.iter() {
            assert!(
                at >= start + schedule.intended(i),
                "request {i} released before its time"
            );
        }
        seen.iter().map(|&(i, _, later)| (i, later)).collect()
    })
}

#[test]
fn waiters_are_released_in_index_order_and_not_before_they_are_due() {
    // 1,000/s: all three within about 2 ms.
    let seen = paced(1000.0, 3, &[2, 0, 1]);
    let order: Vec<u64> = seen.iter().map(|s| s.0).collect();
    assert_eq!(order, [0, 1, 2]);
}

#[test]
fn an_earlier_request_that_starts_waiting_is_not_held_back_to_a_later_timer() {
    // 20/s: request 4 is due at 200 ms, request 1 at 50 ms. The pacer arms for 4 first; when 1
    // starts waiting it must re-arm, so 1 is out while 4 (the last) is not yet.
    let seen = paced(20.0, 5, &[4, 1]);
    let one = seen.iter().find(|s| s.0 == 1).unwrap();
    assert!(!one.1, "request 1 was held until request 4 was due");
}

#[test]
fn nothing_is_released_before_the_start() {
    let rt = runtime();
    rt.block_on(async {
        let gate = Gate::default();
        let timer = Timer::new().unwrap();
        let start = Instant::now() + Duration::from_secs(3600);
        let mut pacer = std::pin::pin!(pace(&gate, &timer, start, Schedule::new(10.0).unwrap(), 5));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(pacer.as_mut().poll(&mut cx).is_pending());
        let mut wait = std::pin::pin!(gate.wait(0));
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        assert!(pacer.as_mut().poll(&mut cx).is_pending());
        assert!(!gate.is_released(0));
    });
}
