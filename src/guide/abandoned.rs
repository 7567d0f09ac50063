//! What happens to a statement whose future is dropped, and to its connection.
//!
//! A statement whose future is dropped before its answer (a request timeout,
//! a client gone) and a `query_raw` stream dropped before its end are
//! ordinary in real services. tokio-postgres reads and drops the rest of such
//! a statement's answer itself, in order, so the connection stays in step; but
//! the server may still be running the statement, and the next user of the
//! connection would wait behind it. The monitor tells the two cases apart
//! with the rule the protocol gives: the server answers in order, so once
//! anything sent after the abandoned statement has answered, the server is
//! past it.
//!
//! - A later statement of the same checkout that the server answered settles
//!   the connection at no cost.
//! - Otherwise the checkout's return pings the connection (an empty query) in
//!   a task of its own, holding it back from the pool: an answer within
//!   `abandoned_grace` (100 ms, `ASYNC_DB_ABANDONED_GRACE`) puts it back (and
//!   stands in for bb8's validity check on the next checkout within 500 ms);
//!   no answer means the server is still running the statement, so a
//!   PostgreSQL cancel request goes out, while nobody else can run anything on
//!   the connection, and the connection is retired.
//!
//! `db_monitor_abandoned_connections_total{outcome="kept"|"retired"}` counts
//! the two ends. A dropped future is counted as `cancelled` (time until
//! abandonment is not a latency); a stream dropped early is recorded as a
//! finished statement with the rows its reader took, and counted in
//! `db_monitor_streams_ended_early_total`. Tests:
//! `a_stream_read_in_part_keeps_its_connection_and_sends_no_cancel` and
//! `a_statement_abandoned_after_the_server_answered_keeps_its_connection`
//! (tests/adoption.rs),
//! `an_abandoned_statement_retires_its_connection_and_is_cancelled_on_the_server`
//! and `a_row_stream_dropped_while_the_server_still_sends_is_cancelled_there`
//! (tests/faults.rs).
//!
//! PostgreSQL cancels whatever the backend runs when a cancel request
//! arrives, and does not acknowledge it. So a request is sent only when
//! nothing but the abandoned work can be running: from the settling task, or
//! once the connection has no user left (a stream can outlive its checkout;
//! its connection is then not handed to the next caller). Each request is a
//! connection of its own: at most four are in progress per pool, each bounded
//! by 5 s, connecting included, and the rest are skipped, since their
//! connections are retired anyway. `db_monitor_cancel_requests_total{outcome}`
//! counts them as `sent`, `failed`, `timed_out` or `skipped`. Tests:
//! `a_cancel_request_never_falls_on_the_next_statement_of_the_checkout`,
//! `a_stream_outliving_its_checkout_keeps_its_connection_from_the_next_caller`,
//! `cancel_requests_are_capped_and_time_out_under_a_partition` (a proxy whose
//! full listen queue makes connects hang).
