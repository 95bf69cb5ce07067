//! Reading the deployed pipeline's CloudWatch Logs: where its log groups are, and their events
//! in a time window (`FilterLogEvents`, paged).
//!
//! The template names every log group after the stack: `/aws/lambda/<stack>-<stage>` for the
//! five functions and `/aws/vendedlogs/states/<stack>-pipeline` for the state machine, so one
//! stack name finds all six. It comes from `--stack` (`PIPELINE_STACK`), or from the log group
//! the state machine's logging configuration names.

pub use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::operation::filter_log_events::FilterLogEventsError;

use crate::error::Error;

/// The stack of a state machine, read off the log group its logging configuration names;
/// `None` when it logs to no group named after a stack.
pub async fn stack_of_machine(
    sdk: &aws_config::SdkConfig,
    arn: &str,
) -> Result<Option<String>, Error> {
    let d = aws_sdk_sfn::Client::new(sdk)
        .describe_state_machine()
        .state_machine_arn(arn)
        .send()
        .await
        .map_err(|e| Error::call(format!("DescribeStateMachine on {arn}"), e))?;
    Ok(d.logging_configuration()
        .and_then(|l| l.destinations().first())
        .and_then(|x| x.cloud_watch_logs_log_group())
        .and_then(|g| g.log_group_arn())
        .and_then(group_of_arn)
        .and_then(stack_of_machine_group)
        .map(str::to_owned))
}

/// The state machine's log group of a stack.
pub fn machine_group(stack: &str) -> String {
    format!("/aws/vendedlogs/states/{stack}-pipeline")
}

/// A function's log group of a stack.
pub fn function_group(stack: &str, stage: &str) -> String {
    format!("/aws/lambda/{stack}-{stage}")
}

/// The stack whose template made this state machine log group, if it follows the template.
pub fn stack_of_machine_group(group: &str) -> Option<&str> {
    group
        .strip_prefix("/aws/vendedlogs/states/")?
        .strip_suffix("-pipeline")
        .filter(|s| !s.is_empty())
}

/// The log group name in a log group ARN (`arn:aws:logs:<region>:<account>:log-group:<name>:*`).
pub fn group_of_arn(arn: &str) -> Option<&str> {
    let (_, rest) = arn.split_once(":log-group:")?;
    Some(rest.strip_suffix(":*").unwrap_or(rest))
}

/// One log event.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// The log group it was read from.
    pub group: String,
    /// Its stream.
    pub stream: String,
    /// Its timestamp, ms.
    pub t_ms: i64,
    /// CloudWatch's id for it (to skip it when seen again while following).
    pub id: String,
    /// The text.
    pub message: String,
}

/// What a read returned.
#[derive(Debug, Default)]
pub struct Read {
    /// The events, oldest first.
    pub lines: Vec<LogLine>,
    /// The group does not exist.
    pub missing: bool,
    /// More events matched than `cap`: the oldest `cap` are returned.
    pub truncated: bool,
}

/// Events of `group` in `[start_ms, end_ms)`, matching `pattern` (CloudWatch filter syntax;
/// a quoted term matches the text anywhere), at most `cap`.
pub async fn read(
    client: &Client,
    group: &str,
    start_ms: i64,
    end_ms: Option<i64>,
    pattern: Option<&str>,
    cap: usize,
) -> Result<Read, Error> {
    let mut out = Read::default();
    let mut token: Option<String> = None;
    loop {
        let mut req = client
            .filter_log_events()
            .log_group_name(group)
            .start_time(start_ms)
            .set_end_time(end_ms)
            .set_filter_pattern(pattern.map(str::to_owned))
            .set_next_token(token.clone());
        if cap < 10_000 {
            req = req.limit(cap.max(1) as i32);
        }
        let page = match req.send().await {
            Ok(p) => p,
            Err(e) => {
                if let Some(FilterLogEventsError::ResourceNotFoundException(_)) =
                    e.as_service_error()
                {
                    out.missing = true;
                    return Ok(out);
                }
                return Err(Error::call(format!("FilterLogEvents on {group}"), e));
            }
        };
        for e in page.events() {
            if out.lines.len() >= cap {
                out.truncated = true;
                break;
            }
            out.lines.push(LogLine {
                group: group.to_owned(),
                stream: e.log_stream_name().unwrap_or_default().to_owned(),
                t_ms: e.timestamp().unwrap_or_default(),
                id: e.event_id().unwrap_or_default().to_owned(),
                message: e.message().unwrap_or_default().to_owned(),
            });
        }
        let next = page.next_token().map(str::to_owned);
        // An empty or partly full page does not end the search (CloudWatch searches the
        // group's streams in slices and may find nothing in one); no token does. Some servers
        // hand back the same token at the end instead of none.
        if next.is_none() || next == token || out.truncated {
            break;
        }
        token = next;
    }
    out.lines.sort_by_key(|l| l.t_ms);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_template() {
        let group = machine_group("prod-events");
        assert_eq!(group, "/aws/vendedlogs/states/prod-events-pipeline");
        assert_eq!(stack_of_machine_group(&group), Some("prod-events"));
        assert_eq!(stack_of_machine_group("/aws/vendedlogs/states/other"), None);
        assert_eq!(
            function_group("prod-events", "persist"),
            "/aws/lambda/prod-events-persist"
        );
        assert_eq!(
            group_of_arn(
                "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/vendedlogs/states/p-pipeline:*"
            ),
            Some("/aws/vendedlogs/states/p-pipeline")
        );
        assert_eq!(group_of_arn("arn:aws:sqs:x"), None);
    }
}
