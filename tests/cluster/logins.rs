//! Login throttling across nodes: the buckets live in Redis, so an attacker who spreads guesses
//! over N nodes gets no more than from one.

use std::time::Duration;

use fluxon::auth::PasswordHasher;
use fluxon::db::{AsyncDatabase, Executor, Model, Password};
use fluxon::{
    view, views, AsyncServer, LoginLimits, Rate, Request, Router, RunningServer, ViewError,
};

use crate::common::*;

/// Someone who logs in.
#[derive(Model, Debug)]
#[model(authorized_user)]
pub struct Member {
    #[field(max_length = 64, unique)]
    pub username: String,
    pub password: Password,
}

#[view]
async fn login(req: Request, (username, password): (String, String)) -> Result<i64, ViewError> {
    Ok(req
        .login_with_password::<Member>(&username, &password)
        .await?)
}

/// A node of a cluster whose members (in the shared database at `place`) log in with a
/// password: 3 tries per username and address a minute.
async fn login_node(redis: &Redis, place: &str) -> RunningServer {
    let db = AsyncDatabase::open(place).expect("database");
    let router = Router::new()
        .private_key(KEY)
        .and_then(|r| r.state(db).mapping(views![login]))
        .expect("router");
    let logins = LoginLimits::default()
        .per_user_and_peer(Some(Rate::per_minute(3)))
        .per_peer(Some(Rate::per_minute(100)))
        .per_user(None);
    AsyncServer::new(0)
        .router(router)
        .max_connections_per_peer(None)
        .limits(fluxon::Limits::default().logins(logins))
        .cluster(cluster(redis))
        .start()
        .await
        .expect("a node starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guesses_spread_over_three_nodes_are_throttled_as_on_one() {
    let redis = Redis::start();
    // The members in the PostgreSQL database every node shares.
    let place = crate::postgres::fresh_database();
    let db = AsyncDatabase::open(&place).expect("database");
    db.create_tables(&[Member::SCHEMA]).await.expect("tables");
    let hasher = PasswordHasher::new(1, None, Duration::from_secs(60));
    db.insert(&Member {
        username: "jack".to_owned(),
        password: hasher.hash("the real one").await.expect("hash"),
    })
    .await
    .expect("jack");
    let nodes = [
        login_node(&redis, &place).await,
        login_node(&redis, &place).await,
        login_node(&redis, &place).await,
    ];
    let clients = [
        client(&nodes[0]).await,
        client(&nodes[1]).await,
        client(&nodes[2]).await,
    ];
    // Nine guesses, three per node, one after another: one node would allow three.
    let mut wrong = 0;
    let mut throttled = 0;
    for i in 0..9 {
        let guess = ("jack".to_owned(), format!("guess {i}"));
        match clients[i % 3].call(login, &guess).await {
            Ok(id) => panic!("a guess logged in as {id}"),
            Err(err) if err.to_string().contains("too many login attempts") => throttled += 1,
            Err(err) if err.to_string().contains("wrong username or password") => wrong += 1,
            Err(err) => panic!("{err}"),
        }
    }
    assert_eq!(
        (wrong, throttled),
        (3, 6),
        "guesses the cluster let through"
    );
    // The throttling state is in Redis, under the prefix.
    assert!(redis.keys().iter().any(|k| k.starts_with("test:lt:up:")));
    for conn in &clients {
        conn.close().await;
    }
    for node in nodes {
        node.shutdown().await;
    }
}
