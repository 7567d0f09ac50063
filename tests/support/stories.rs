//! A small application's data access, generic over the client as such
//! code is: the test application of `tests/adoption.rs` and the workload of
//! `benches/adoption.rs`.

#![allow(dead_code)]

use db_monitor::tokio_postgres::Error;
use db_monitor::{GenericClient, MonitoredStatement};
use futures_util::StreamExt;

pub(crate) async fn story_title(db: &impl GenericClient, id: i32) -> Result<Option<String>, Error> {
    let row = db.query_opt("SELECT title FROM stories WHERE id = $1", &[&id]).await?;
    Ok(row.map(|r| r.get(0)))
}

/// The first story from `id` on: the stream is read for one row and
/// dropped, the rest left to the driver.
pub(crate) async fn first_story_from(db: &impl GenericClient, id: i32) -> Result<Option<String>, Error> {
    let rows = db
        .query_raw("SELECT title FROM stories WHERE id >= $1 ORDER BY id", [id])
        .await?;
    let mut rows = std::pin::pin!(rows);
    Ok(match rows.next().await {
        Some(row) => Some(row?.get(0)),
        None => None,
    })
}

pub(crate) async fn story_title_prepared(
    db: &impl GenericClient,
    statement: &MonitoredStatement,
    id: i32,
) -> Result<String, Error> {
    Ok(db.query_one(statement, &[&id]).await?.get(0))
}

pub(crate) async fn add_story(db: &impl GenericClient, id: i32, title: &str) -> Result<u64, Error> {
    db.execute("INSERT INTO stories (id, title) VALUES ($1, $2)", &[&id, &title])
        .await
}

pub(crate) async fn rename_story(db: &impl GenericClient, id: i32, title: &str) -> Result<u64, Error> {
    db.execute("UPDATE stories SET title = $2 WHERE id = $1", &[&id, &title])
        .await
}
