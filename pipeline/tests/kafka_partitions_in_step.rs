//! A live consumer (`ghosthunt run` in a consumer group, on the real broker) catching up on partitions
//! that run apart in event time: while a windowed hunt's state fills, the partition ahead is paused
//! until the older one catches up, so no row is dropped and the windows count what the same events
//! give from a file in time order.

mod common;

use common::kafka::Broker;
use common::kafka::skewed::{produce_halves, producer};

/// The first half of 100,000 events (33 minutes of event time) is on partition 0, the second on
/// partition 1, and the consumer reads the topic's `partitions` from the start. The windows have room
/// for 40,000 rows (about 26 minutes of events; the partitions are held back from 20,000 on, and the
/// records already read when they are — some thousands — still come): read side by side, partition 1's
/// rows would wait in the windows for partition 0's 33 minutes and overflow them (rows dropped: other
/// counts; checked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_ahead_is_paused_while_the_windows_fill_and_no_row_is_dropped() {
    live_windows_count_as_the_file(2).await;
}

/// The same with a third partition that stays empty: until it is idle (`window.idle_timeout`) it holds
/// the watermark, so the windows fill with both other partitions' rows; while they do, both wait for
/// it to be known or idle instead of overflowing the windows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_partition_holds_the_others_while_the_windows_fill_until_it_is_idle() {
    live_windows_count_as_the_file(3).await;
}

async fn live_windows_count_as_the_file(partitions: i32) {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("live-skewed", partitions).await;
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = produce_halves(&producer(&broker), "live-skewed", dir.path()).await;
    let source = [
        ("GHOSTHUNT__SOURCE__KIND", "kafka".to_string()),
        ("GHOSTHUNT__SOURCE__KAFKA__TOPICS", "live-skewed".into()),
        ("GHOSTHUNT__SOURCE__KAFKA__GROUP_ID", "live-skewed".into()),
        (
            "GHOSTHUNT__SOURCE__KAFKA__OPTIONS__SESSION_TIMEOUT_MS",
            common::kafka::TEST_SESSION_TIMEOUT_MS.to_string(),
        ),
        ("GHOSTHUNT__KAFKA__BROKERS", broker.bootstrap.clone()),
    ];
    let log = common::assert_live_windows_count_as_the_file(dir.path(), &file, &source).await;
    assert!(
        log.lines()
            .any(|l| l.contains("Partition paused or resumed")
                && l.contains("partition=1 ahead=true")),
        "partition 1 was never paused:\n{log}"
    );
}
