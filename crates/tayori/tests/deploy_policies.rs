//! The SQS queue policies of the Terraform module (`deploy/terraform/modules/tayori`), parsed as
//! HCL: every queue policy denies `sqs:SendMessage` explicitly to every principal but its
//! senders, so that a role of the account whose own policy allows it on `*` still cannot forge
//! SES feedback or another tenant's events. `terraform validate` needs the AWS provider from the
//! Terraform registry, which is not reachable offline; this reads what the module says instead.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::path::PathBuf;

use hcl::{Block, Body};

/// Every top-level block of the module's `.tf` files.
fn module_blocks() -> Vec<Block> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/terraform/modules/tayori");
    let mut blocks = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "tf") {
            let body: Body = hcl::parse(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            blocks.extend(body.into_blocks());
        }
    }
    blocks
}

fn labels(block: &Block) -> Vec<&str> {
    block.labels().iter().map(|l| l.as_str()).collect()
}

fn find<'a>(blocks: &'a [Block], kind: &str, type_and_name: [&str; 2]) -> &'a Block {
    blocks
        .iter()
        .find(|b| b.identifier() == kind && labels(b) == type_and_name)
        .unwrap_or_else(|| panic!("no {kind} {type_and_name:?} in the module"))
}

/// An attribute of `body`, formatted as HCL without whitespace (`"Deny"`,
/// `["sqs:SendMessage"]`, `aws_sns_topic.ses_events.arn`, `concat(a,b)`).
fn attribute(body: &Body, key: &str) -> Option<String> {
    body.attributes()
        .find(|a| a.key.as_str() == key)
        .map(|a| a.expr.to_string().split_whitespace().collect())
}

/// The bodies of `body`'s `name` blocks, `dynamic "name" { content { ... } }` included.
fn nested<'a>(body: &'a Body, name: &str) -> Vec<&'a Body> {
    body.blocks()
        .filter_map(|b| match b.identifier() {
            id if id == name => Some(b.body()),
            "dynamic" if labels(b) == [name] => {
                b.body().blocks().find(|c| c.identifier() == "content").map(Block::body)
            }
            _ => None,
        })
        .collect()
}

/// The statement named `sid` of a policy document.
fn statement<'a>(document: &'a Block, sid: &str) -> &'a Body {
    let quoted = format!("{sid:?}");
    nested(document.body(), "statement")
        .into_iter()
        .find(|s| attribute(s, "sid").as_deref() == Some(quoted.as_str()))
        .unwrap_or_else(|| panic!("no statement {sid} in {:?}", labels(document)))
}

/// `(test, variable, values)` of each condition of a statement.
fn conditions(statement: &Body) -> Vec<(String, String, String)> {
    nested(statement, "condition")
        .into_iter()
        .map(|c| {
            let get = |k| attribute(c, k).unwrap_or_default();
            (get("test"), get("variable"), get("values"))
        })
        .collect()
}

/// Asserts that `statement` denies sqs:SendMessage to every principal, and returns its
/// conditions.
fn assert_denies_sending_to_everyone(statement: &Body) -> Vec<(String, String, String)> {
    assert_eq!(attribute(statement, "effect").as_deref(), Some("\"Deny\""));
    assert_eq!(attribute(statement, "actions").as_deref(), Some("[\"sqs:SendMessage\"]"));
    let principals = nested(statement, "principals");
    assert_eq!(principals.len(), 1, "one principals block");
    assert_eq!(attribute(principals[0], "type").as_deref(), Some("\"*\""));
    assert_eq!(attribute(principals[0], "identifiers").as_deref(), Some("[\"*\"]"));
    conditions(statement)
}

fn condition(test: &str, variable: &str, values: &str) -> (String, String, String) {
    (format!("{test:?}"), format!("{variable:?}"), values.to_owned())
}

#[test]
fn the_feedback_queue_takes_messages_from_its_sns_topic_only() {
    let blocks = module_blocks();
    let policy = find(&blocks, "resource", ["aws_sqs_queue_policy", "feedback"]);
    assert_eq!(
        attribute(policy.body(), "policy").as_deref(),
        Some("data.aws_iam_policy_document.feedback_queue.json")
    );
    let document = find(&blocks, "data", ["aws_iam_policy_document", "feedback_queue"]);
    let topic = "[aws_sns_topic.ses_events.arn]";
    assert!(
        conditions(statement(document, "SesEventsTopic")).contains(&condition(
            "ArnEquals",
            "aws:SourceArn",
            topic
        )),
        "the topic is allowed by its ARN"
    );
    let deny = assert_denies_sending_to_everyone(statement(document, "DenyAllButSesEventsTopic"));
    assert_eq!(
        deny,
        [
            condition("ArnNotEquals", "aws:SourceArn", topic),
            // Conditions are ANDed: the redrive roles (and only they) are let through too.
            condition("ArnNotEquals", "aws:PrincipalArn", "local.redrive_principal_arns"),
        ]
    );
}

#[test]
fn the_events_queues_take_messages_from_their_producers_only() {
    let blocks = module_blocks();
    let shared = find(&blocks, "data", ["aws_iam_policy_document", "events_queue"]);
    let deny = assert_denies_sending_to_everyone(statement(shared, "DenyAllButProducers"));
    assert_eq!(deny, [condition("ArnNotEquals", "aws:PrincipalArn", "local.shared_senders")]);

    // Who the shared queue's senders are: the module-wide producers, the producers of the
    // tenants without a queue of their own, and the redrive roles; no one else.
    let locals: Vec<_> = blocks.iter().filter(|b| b.identifier() == "locals").collect();
    let shared_senders = locals
        .iter()
        .find_map(|l| attribute(l.body(), "shared_senders"))
        .expect("local.shared_senders");
    let references: Vec<&str> = shared_senders
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
        .filter(|word| word.starts_with("var.") || word.starts_with("local."))
        .collect();
    assert_eq!(
        references,
        ["var.producer_principal_arns", "local.shared_producers", "local.redrive_principal_arns"],
        "{shared_senders}"
    );

    let dedicated = find(&blocks, "data", ["aws_iam_policy_document", "dedicated_queue"]);
    let deny = assert_denies_sending_to_everyone(statement(dedicated, "DenyAllButProducers"));
    assert_eq!(
        deny,
        [condition(
            "ArnNotEquals",
            "aws:PrincipalArn",
            "distinct(concat(each.value,local.redrive_principal_arns))"
        )]
    );
}

/// A queue policy added later gets the same rule: its document has a Deny for everyone else.
#[test]
fn every_queue_policy_denies_sending_to_everyone_else() {
    let blocks = module_blocks();
    let policies: Vec<_> = blocks
        .iter()
        .filter(|b| b.identifier() == "resource" && labels(b)[0] == "aws_sqs_queue_policy")
        .collect();
    assert_eq!(policies.len(), 3, "feedback, events, dedicated");
    for policy in policies {
        let source = attribute(policy.body(), "policy").unwrap();
        let name = source
            .strip_prefix("data.aws_iam_policy_document.")
            .and_then(|rest| rest.split(['.', '[']).next())
            .unwrap_or_else(|| panic!("{:?}: policy = {source}", labels(policy)));
        let document = find(&blocks, "data", ["aws_iam_policy_document", name]);
        let denies = nested(document.body(), "statement")
            .into_iter()
            .filter(|s| attribute(s, "effect").as_deref() == Some("\"Deny\""))
            .count();
        assert_eq!(denies, 1, "{name}: one explicit Deny statement");
    }
}

#[test]
fn the_redrive_roles_are_a_variable_and_include_the_modules_admin_role() {
    let blocks = module_blocks();
    let variable = blocks
        .iter()
        .find(|b| b.identifier() == "variable" && labels(b) == ["redrive_principal_arns"])
        .expect("variable redrive_principal_arns");
    assert_eq!(attribute(variable.body(), "default").as_deref(), Some("[]"));
    let redrivers = blocks
        .iter()
        .filter(|b| b.identifier() == "locals")
        .find_map(|l| attribute(l.body(), "redrive_principal_arns"))
        .expect("local.redrive_principal_arns");
    assert!(redrivers.contains("var.redrive_principal_arns"), "{redrivers}");
    assert!(redrivers.contains("aws_iam_role.irsa"), "the module's admin role: {redrivers}");
}
