//! Every metric the node exports, with its unit and the HELP text Prometheus shows (names as
//! recorded; the exporter adds the `aigo_` prefix). docs/DEPLOYMENT.md says which to alert on.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Describes every metric; called once, when the recorder is installed.
pub fn describe() {
    describe_http();
    describe_commands_and_relay();
    describe_projection();
    describe_reads();
}

fn describe_http() {
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "Time from a request's arrival to its response head, by method, matched route and status."
    );
    describe_counter!(
        "task_failures_total",
        "Failures of the node's supervised tasks (each is restarted), by task."
    );
}

fn describe_commands_and_relay() {
    describe_counter!(
        "commands_total",
        "Commands handled, by command and outcome."
    );
    describe_counter!(
        "commands_rate_limited_total",
        "Commands refused with 429 by the per-caller rate limit."
    );
    describe_histogram!(
        "append_batch_commands",
        Unit::Count,
        "Commands committed per append transaction (group commit)."
    );
    describe_counter!(
        "import_requests_total",
        "POST /v1/imports requests accepted for processing (their lines count in commands_total)."
    );
    describe_counter!("export_requests_total", "GET /v1/exports requests started.");
    describe_gauge!(
        "outbox_pending_rows",
        "Outbox rows not yet published to Kafka: the relay's backlog (0 each time it drains the \
         outbox, counted after each step that failed)."
    );
    describe_gauge!(
        "outbox_relay_leader",
        "1 while this process is its region's publishing relay, else 0."
    );
    describe_gauge!(
        "partition_claims_held",
        "Partitions this process reads for a reader (projector or catalogue follower), by the \
         advisory locks it holds."
    );
    describe_counter!(
        "partition_claims_lost_total",
        "Times this process let go of every partition of a reader because the database session \
         holding their locks ended."
    );
    describe_counter!(
        "outbox_relay_leadership_lost_total",
        "Times this process lost the relay leadership (its database session ended)."
    );
    describe_counter!(
        "outbox_published_total",
        "Outbox rows published and acknowledged by the brokers."
    );
    describe_counter!(
        "outbox_topics_republished_total",
        "Times the relay found its topic empty although rows were published to it (lost and created again) and sent its whole history again."
    );
    describe_counter!(
        "outbox_reconciled_total",
        "Rows found on the topic after a failure and marked published without a resend."
    );
    describe_counter!(
        "outbox_overtaking_resent_total",
        "Rows acknowledged after an earlier row of their partition failed, sent again in order."
    );
    describe_counter!(
        "outbox_foreign_records_total",
        "Records on the region topic without the relay's position header (not ours)."
    );
    describe_counter!(
        "outbox_relay_errors_total",
        "Failed relay steps (each retried with back-off)."
    );
    describe_histogram!(
        "outbox_publish_batch_seconds",
        Unit::Seconds,
        "Time to publish one outbox batch and mark it published."
    );
}

fn describe_projection() {
    describe_counter!(
        "projector_events_folded_total",
        "Records the projector folded, by outcome (applied, duplicate, held, skipped)."
    );
    describe_counter!(
        "projector_redelivered_total",
        "Records redelivered below the checkpoint and ignored."
    );
    describe_histogram!(
        "projector_commit_seconds",
        Unit::Seconds,
        "Time to commit the projector's checkpoint (fold state and offsets) to PostgreSQL."
    );
    describe_gauge!(
        "projector_consumer_lag",
        "Records of the region topic not yet folded, by topic and partition."
    );
    describe_gauge!(
        "catalogue_consumer_lag",
        "Records not yet applied to the catalogue, by topic and partition."
    );
    describe_counter!(
        "catalogue_events_applied_total",
        "Events the catalogue follower applied."
    );
    describe_gauge!(
        "reader_partitions_stalled",
        "Assigned partitions of a reader (projector, catalogue) with records to deliver that have \
         not moved for 10 s: librdkafka not fetching them, or the reader not taking them."
    );
    describe_counter!(
        "reader_partition_stalls_total",
        "Times a partition of a reader was found standing still for 10 s with records to deliver."
    );
    describe_gauge!(
        "reader_asleep",
        "1 while a reader (projector, catalogue) is idle and fetches nothing, until woken."
    );
    describe_counter!(
        "reader_wakeups_total",
        "Times an idle reader started fetching again, by reader and cause (told: records \
         arrived; look: its periodic look; assignment: its partitions changed)."
    );
    describe_counter!(
        "table_analyzes_total",
        "ANALYZE runs the append queue and the catalogue follower made as their tables grew \
         (planner statistics kept current while a node catches up)."
    );
    describe_counter!(
        "table_analyzes_skipped_total",
        "Turns of an analyzer skipped because another one of the same database was analyzing, or a table was held by a VACUUM or another ANALYZE."
    );
    describe_counter!(
        "topic_incarnations_total",
        "Partitions a reader (projector, catalogue) started over from offset 0 because their topic was deleted and created again (the record it last consumed is gone), by reader."
    );
    describe_counter!(
        "undecodable_records_total",
        "Records a consumer could not decode, by consumer and policy."
    );
    describe_counter!(
        "dead_lettered_records_total",
        "Undecodable records copied to the dead-letter topic, by consumer."
    );
    describe_gauge!(
        "exchange_last_state_received_seconds",
        Unit::Seconds,
        "Unix time of the last state merged from each other region's actor (region/partition)."
    );
    describe_counter!(
        "exchange_states_refused_total",
        "Actor states refused by the exchange's trust rules, by reason and source."
    );
    describe_gauge!("exchange_epoch", "The state exchange's current epoch.");
    describe_counter!(
        "exchange_epoch_rebuilds_total",
        "Times this node rebuilt its region's actors for a new exchange epoch."
    );
}

fn describe_reads() {
    describe_counter!(
        "read_your_writes_timeouts_total",
        "Reads with a consistency token answered 504 after waiting their limit."
    );
    describe_counter!(
        "reads_timed_out_total",
        "Read statements cancelled by the read side's statement timeout."
    );
    describe_counter!(
        "history_reads_total",
        "History reads (?at=, series), by source (index or replay)."
    );
    describe_counter!(
        "history_reads_refused_total",
        "History reads refused with 503, by why (concurrency or rate)."
    );
    describe_counter!(
        "history_index_events_total",
        "Events the history indexer has indexed."
    );
    describe_gauge!("stream_clients", "Live (SSE) streams open.");
    describe_counter!("stream_events_sent_total", "Events sent on live streams.");
    describe_counter!(
        "stream_refused_total",
        "Live streams refused (over the node's or a client's cap)."
    );
    describe_counter!(
        "stream_resumed_total",
        "Live streams resumed from Last-Event-ID without a snapshot."
    );
    describe_counter!(
        "stream_resyncs_total",
        "Live streams sent a fresh snapshot because they fell behind."
    );
    describe_counter!(
        "stream_changes_dropped_total",
        "Change notices a slow live stream missed (it resyncs)."
    );
}
