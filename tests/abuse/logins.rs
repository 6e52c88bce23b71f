//! Password logins under attack: floods from one address and from many, a sprayer of usernames,
//! and the hashing bound on its own. In each, jack (or jill) logs in from 127.0.0.1 during the
//! flood, and a bystander there is served throughout.

use std::time::{Duration, Instant};

use fluxon::wire::{Capacity, RefuseReason};
use fluxon::{AsyncServer, CallError, ConnectError, ConnectionHandler, LoginLimits};
use futures_util::future::join_all;

use crate::app::*;
use crate::support::{mib, rss, Bystander, PeakRss, PROMPT};
use crate::ALONE;

/// One argon2id hash holds 19 MiB while it runs.
const PER_HASH: u64 = 19 * 1024 * 1024;
/// What everything else a flood costs may take: the connections, the calls waiting, the
/// allocator's slack, the clients (in this process too).
const MARGIN: u64 = 64 * 1024 * 1024;

/// How each attempt of a flood ended.
#[derive(Debug, Default)]
struct Outcomes {
    wrong: usize,
    throttled: usize,
    busy: usize,
}

fn tally(results: Vec<Result<i64, CallError>>) -> Outcomes {
    let mut outcomes = Outcomes::default();
    for result in results {
        match result {
            Ok(id) => panic!("an attacker logged in as {id}"),
            Err(err) => {
                let text = err.to_string();
                if text.contains("wrong username or password") {
                    outcomes.wrong += 1;
                } else if text.contains("too many login attempts; retry in") {
                    outcomes.throttled += 1;
                } else if text.contains("busy checking passwords") {
                    outcomes.busy += 1;
                } else {
                    panic!("an attempt ended otherwise: {text}");
                }
            }
        }
    }
    outcomes
}

/// The memory a flood cost, failing the test past `bound`.
fn grew_within(before: u64, peak: u64, bound: u64) -> u64 {
    let growth = peak.saturating_sub(before);
    assert!(
        growth < bound,
        "grew {:.1} MiB, bound {:.1} MiB",
        mib(growth),
        mib(bound)
    );
    growth
}

async fn close_all(conns: Vec<ConnectionHandler>) {
    for conn in conns {
        conn.close().await;
    }
}

/// `n` login attempts as `username` with wrong passwords, spread over `conns`, all in flight at
/// once.
async fn flood(
    conns: &[ConnectionHandler],
    username: &str,
    n: usize,
) -> Vec<Result<i64, CallError>> {
    join_all((0..n).map(|i| {
        let conn = conns[i % conns.len()].clone();
        let form = (username.to_owned(), format!("guess number {i}"));
        async move { conn.call(login, &form).await }
    }))
    .await
}

/// Logs in from 127.0.0.1 while a flood runs; how long it took.
async fn log_in(app: &App, username: &str, password: &str) -> Duration {
    let conn = ConnectionHandler::connect(app.addr())
        .await
        .expect("connects");
    let started = Instant::now();
    let id = conn
        .call(login, &(username.to_owned(), password.to_owned()))
        .await
        .unwrap_or_else(|err| panic!("{username} could not log in during the flood: {err}"));
    let took = started.elapsed();
    assert_eq!(conn.call(whoami, &()).await.unwrap(), Some(id));
    conn.close().await;
    took
}

/// The first case: 1,000 logins in flight from one address, over as many connections as
/// its cap allows (the rest refused), all guessing jack's password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_logins_from_one_address_are_throttled_in_bounded_memory_while_jack_logs_in() {
    let _alone = ALONE.lock().await;
    let app = start(AsyncServer::new(0).max_connections_per_peer(Some(8))).await;
    let hashes = LoginLimits::default().max_concurrent_hashes as u64;
    let bystander = Bystander::connect(&app.addr()).await;
    let before = rss();
    let peak = PeakRss::start();

    let mut conns = Vec::new();
    let mut refused = 0;
    for _ in 0..16 {
        match client_from(&app, "127.0.0.2").await {
            Ok(conn) => conns.push(conn),
            Err(ConnectError::Refused {
                reason: RefuseReason::ServerFull(Capacity::PeerConnections),
                ..
            }) => refused += 1,
            Err(err) => panic!("an attacker's connection failed otherwise: {err}"),
        }
    }
    assert_eq!((conns.len(), refused), (8, 8), "the address's cap is 8");

    let started = Instant::now();
    let attack = tokio::spawn({
        let conns = conns.clone();
        async move { flood(&conns, "jack", 1_000).await }
    });
    bystander.served_now(5).await;
    let jack_took = log_in(&app, "jack", JACK_PASSWORD).await;
    let outcomes = tally(attack.await.expect("the flood ran"));
    let flood_took = started.elapsed();
    let peak = peak.finish().await;
    let served = bystander.finish().await;

    // Five guesses for jack from that address; everything else refused before any hashing.
    assert!(outcomes.wrong <= 5, "{outcomes:?}");
    assert_eq!(outcomes.wrong + outcomes.throttled + outcomes.busy, 1_000);
    assert!(outcomes.throttled >= 990, "{outcomes:?}");
    let stats = app.server.handle().stats();
    assert_eq!(stats.logins_throttled as usize, outcomes.throttled);
    assert_eq!(stats.logins_failed as usize, outcomes.wrong);
    assert_eq!(stats.logins_succeeded, 1, "jack");
    assert_eq!(stats.refused.peer_connections, 8);
    let bound = MARGIN + hashes * PER_HASH;
    let growth = grew_within(before, peak, bound);
    assert!(served.slowest < PROMPT, "{served:?}");
    eprintln!(
        "one address: 1000 attempts in {flood_took:?} ({:.0}/s), {outcomes:?}; jack logged in \
         in {jack_took:?}; RSS +{:.1} MiB (bound {:.1}); bystander {} calls, p99 {:?}",
        1000.0 / flood_took.as_secs_f64(),
        mib(growth),
        mib(bound),
        served.calls,
        served.p99
    );
    close_all(conns).await;
}

/// The same flood from ten addresses at once: each gets its few guesses at jack, his username's
/// own bucket is spent, and still jack logs in from his own address (slowed, never refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_ten_addresses_slows_jack_but_never_locks_him_out() {
    let _alone = ALONE.lock().await;
    let app = start(AsyncServer::new(0)).await;
    let hashes = LoginLimits::default().max_concurrent_hashes as u64;
    let bystander = Bystander::connect(&app.addr()).await;
    let before = rss();
    let peak = PeakRss::start();

    let mut conns = Vec::new();
    for ip in addresses(2, 11) {
        for _ in 0..2 {
            conns.push(client_from(&app, &ip).await.expect("an attacker connects"));
        }
    }
    let started = Instant::now();
    // Two connections per address, 100 attempts per address.
    let attack = tokio::spawn({
        let conns = conns.clone();
        async move {
            let per_address = conns.chunks(2).map(|pair| {
                let pair = pair.to_vec();
                async move { flood(&pair, "jack", 100).await }
            });
            join_all(per_address)
                .await
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
        }
    });
    bystander.served_now(5).await;
    let jack_took = log_in(&app, "jack", JACK_PASSWORD).await;
    let jill_took = log_in(&app, "jill", JILL_PASSWORD).await;
    let outcomes = tally(attack.await.expect("the flood ran"));
    let flood_took = started.elapsed();
    let peak = peak.finish().await;
    let served = bystander.finish().await;

    assert!(outcomes.wrong <= 50, "five per address: {outcomes:?}");
    assert!(outcomes.throttled >= 900, "{outcomes:?}");
    let bound = MARGIN + hashes * PER_HASH;
    let growth = grew_within(before, peak, bound);
    assert!(served.slowest < PROMPT, "{served:?}");
    eprintln!(
        "ten addresses: 1000 attempts in {flood_took:?}, {outcomes:?}; jack in {jack_took:?}, \
         jill in {jill_took:?}; RSS +{:.1} MiB; bystander {} calls, p99 {:?}",
        mib(growth),
        served.calls,
        served.p99
    );
    close_all(conns).await;
}

/// Floods against jack from one address, then from nineteen (127.0.0.2-127.0.0.20), never stop jack
/// logging in from his own: the buckets that refuse are keyed by address, the one by username only
/// slows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_from_one_and_from_nineteen_addresses_never_lock_jack_out() {
    let _alone = ALONE.lock().await;
    let app = start(AsyncServer::new(0)).await;
    for attackers in [addresses(2, 2), addresses(2, 20)] {
        let mut conns = Vec::new();
        for ip in &attackers {
            conns.push(client_from(&app, ip).await.expect("an attacker connects"));
        }
        let outcomes = tally(flood(&conns, "jack", 40 * attackers.len()).await);
        assert!(outcomes.wrong <= 5 * attackers.len(), "{outcomes:?}");
        assert!(outcomes.throttled > 0, "{outcomes:?}");
        // Jack's own bucket (at his address) is untouched; his username's is spent, which may
        // slow him by a second, never more than that plus a hash or two.
        let took = log_in(&app, "jack", JACK_PASSWORD).await;
        assert!(took < Duration::from_secs(5), "{took:?}");
        close_all(conns).await;
    }
    assert_eq!(app.server.handle().stats().logins_succeeded, 2);
}

/// One address trying many usernames is stopped by its address's bucket; another address is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spraying_usernames_from_one_address_is_throttled_by_address() {
    let _alone = ALONE.lock().await;
    let app = start(AsyncServer::new(0)).await;
    let sprayer = client_from(&app, "127.0.0.3").await.expect("connects");
    let results = join_all((0..200).map(|i| {
        let conn = sprayer.clone();
        async move {
            conn.call(login, &(format!("user{i}"), "password".to_owned()))
                .await
        }
    }))
    .await;
    let outcomes = tally(results);
    assert_eq!(
        outcomes.wrong + outcomes.busy,
        30,
        "30 a minute per address: {outcomes:?}"
    );
    assert_eq!(outcomes.throttled, 170);
    // Throttled, the next attempt is told to wait, and waits grow with every refusal after one.
    let err = sprayer
        .call(login, &("user0".to_owned(), "x".to_owned()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("retry in"), "{err}");
    log_in(&app, "jill", JILL_PASSWORD).await;
    sprayer.close().await;
}

/// With every bucket off, only the hashing bound stands: ten addresses with fifty logins each in
/// flight (unknown usernames: each still costs a hash) never run more hashes than the bound, the
/// memory stays within it, the overflow is refused `Busy`, and jill still logs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hashing_bound_holds_with_every_bucket_off() {
    let _alone = ALONE.lock().await;
    let limits = LoginLimits::default()
        .per_user_and_peer(None)
        .per_peer(None)
        .per_user(None)
        .max_concurrent_hashes(2)
        .max_concurrent_hashes_per_peer(Some(1))
        .hash_wait(Duration::from_millis(1500));
    let app = start(AsyncServer::new(0).login_limits(limits)).await;
    let handle = app.server.handle();
    let bystander = Bystander::connect(&app.addr()).await;
    let before = rss();
    let peak = PeakRss::start();
    let mut conns = Vec::new();
    for ip in addresses(2, 11) {
        conns.push(client_from(&app, &ip).await.expect("connects"));
    }
    let attack = tokio::spawn({
        let conns = conns.clone();
        async move {
            join_all((0..500).map(|i| {
                let conn = conns[i % conns.len()].clone();
                async move {
                    conn.call(login, &(format!("nobody{i}"), "x".to_owned()))
                        .await
                }
            }))
            .await
        }
    });
    let mut most_hashing = 0;
    let watch_until = Instant::now() + Duration::from_secs(30);
    while !attack.is_finished() && Instant::now() < watch_until {
        most_hashing = most_hashing.max(handle.stats().hashes_running);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let jill_took = log_in(&app, "jill", JILL_PASSWORD).await;
    let outcomes = tally(attack.await.expect("the flood ran"));
    let peak = peak.finish().await;
    let served = bystander.finish().await;

    assert!(most_hashing <= 2, "{most_hashing} hashes at once");
    assert!(
        outcomes.busy > 0,
        "the bound turned some away: {outcomes:?}"
    );
    assert_eq!(outcomes.throttled, 0, "no bucket is on");
    assert_eq!(handle.stats().logins_busy as usize, outcomes.busy);
    let bound = MARGIN + 2 * PER_HASH;
    let growth = grew_within(before, peak, bound);
    assert!(served.slowest < PROMPT, "{served:?}");
    eprintln!(
        "hashing bound 2: {outcomes:?}, most at once {most_hashing}; jill in {jill_took:?}; RSS \
         +{:.1} MiB",
        mib(growth)
    );
    close_all(conns).await;
}
