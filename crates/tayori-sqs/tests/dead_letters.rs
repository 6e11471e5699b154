//! The events queue's dead-letter queue as operators see it, on moto server through the real SDK
//! client: found through the redrive policy, counted, looked at without taking anything out, and
//! redriven in part.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::collections::BTreeSet;

use tayori_app::ports::{DeadLetterError, DeadLetters};
use tayori_sqs::SqsDeadLetters;

mod support;

use support::{queue_with_dlq, sqs};

#[tokio::test]
async fn dead_letters_are_counted_looked_at_in_place_and_redriven_in_part() {
    let client = sqs().await;
    let (queue, dlq) = queue_with_dlq(&client, "dead-letters", 3, false).await;
    let bodies = ["{\"n\": 1}", "{\"n\": 2}", "not json at all"];
    for body in bodies {
        client.send_message().queue_url(&dlq).message_body(body).send().await.unwrap();
    }
    let dead_letters = SqsDeadLetters::new(client.clone(), &queue);

    let depth = dead_letters.depth().await.unwrap();
    assert!(dlq.ends_with(&format!("/{}", depth.queue)), "{depth:?} is {dlq}");
    assert_eq!((depth.visible, depth.in_flight), (3, 0));

    // A look takes nothing out: every message is there again, and still counted.
    let seen = dead_letters.peek(10).await.unwrap();
    let got: BTreeSet<_> =
        seen.iter().map(|m| String::from_utf8(m.body.clone()).unwrap()).collect();
    assert_eq!(got, bodies.iter().map(|b| (*b).to_owned()).collect(), "{seen:?}");
    assert!(seen.iter().all(|m| m.sent_at.is_some() && m.receive_count >= 1), "{seen:?}");
    let again = dead_letters.peek(2).await.unwrap();
    assert_eq!(again.len(), 2, "at most the limit");
    assert_eq!(dead_letters.depth().await.unwrap().visible, 3, "nothing hidden or taken");

    // Two moved back to the events queue, one left.
    assert_eq!(dead_letters.redrive(2).await.unwrap(), 2);
    assert_eq!(dead_letters.depth().await.unwrap().visible, 1);
    let moved = client
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(moved.len(), 2);

    // A queue without a redrive policy has no dead-letter queue to show.
    let plain = client
        .create_queue()
        .queue_name(format!("no-dlq-{}", std::process::id()))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let none = SqsDeadLetters::new(client.clone(), &plain).depth().await;
    assert!(matches!(none, Err(DeadLetterError::NoDeadLetterQueue(_))), "{none:?}");
}
