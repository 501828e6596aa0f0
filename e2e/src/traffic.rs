//! Verdicts for the traffic checks, as pure functions over what the clients observed and what
//! the mocks recorded. The live harness only sends requests and collects the observations.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;

use crate::gateway::{CostType, McpBackend, ToolSelector};
use crate::mock::{Recorded, Usage};

/// A check's result: `Ok(detail)` or `Err(why)`.
pub type Verdict = Result<String, String>;

/// Where one model's request must land.
#[derive(Debug, Clone, Copy)]
pub struct Route<'a> {
    pub model: &'a str,
    /// The Azure deployment name (the model, or the backendRef's `modelNameOverride`).
    pub deployment: &'a str,
    /// The id of the mock that must answer.
    pub upstream: &'a str,
    pub api_key: &'a str,
    pub api_version: &'a str,
}

/// A model's answer came with status 200 from the mock `expected` (the gateway routed it there).
pub(crate) fn answered_by(
    model: &str,
    expected: &str,
    status: u16,
    upstream: Option<&str>,
) -> Result<(), String> {
    if status != 200 {
        return Err(format!(
            "model `{model}`: status {status}, expected 200 from `{expected}`"
        ));
    }
    if upstream != Some(expected) {
        return Err(format!(
            "model `{model}`: answered by `{}`, expected `{expected}`",
            upstream.unwrap_or("no mock")
        ));
    }
    Ok(())
}

/// "Model M went to deployment D with D's key": the client saw D's mock answer 200, and D's
/// mock recorded the Azure-shaped request (path, api-version, `api-key`, no `Authorization`).
pub fn routed_to(
    route: &Route<'_>,
    status: u16,
    upstream: Option<&str>,
    recorded: &[Recorded],
) -> Verdict {
    let Route {
        model,
        deployment,
        upstream: expected_upstream,
        api_key,
        api_version,
    } = *route;
    answered_by(model, expected_upstream, status, upstream)?;
    let path = format!("/openai/deployments/{deployment}/chat/completions");
    let hit = recorded.iter().rev().find(|r| r.path == path && r.status == 200).ok_or_else(|| {
        let seen: Vec<String> = recorded.iter().map(|r| format!("{} {} → {}", r.method, r.path, r.status)).collect();
        format!("model `{model}`: `{expected_upstream}` recorded no successful {path}; it saw: [{}]", seen.join(", "))
    })?;
    if hit.header("api-key") != Some(api_key) {
        return Err(format!(
            "model `{model}`: upstream request did not carry the deployment's api-key"
        ));
    }
    if hit.header("authorization").is_some() {
        return Err(format!(
            "model `{model}`: an Authorization header reached Azure"
        ));
    }
    if hit.query_param("api-version") != Some(api_version) {
        return Err(format!(
            "model `{model}`: api-version was {:?}, the AIServiceBackend says `{api_version}`",
            hit.query_param("api-version")
        ));
    }
    Ok(format!(
        "`{model}` → {expected_upstream} {path}?api-version={api_version} with its api-key"
    ))
}

/// An unknown model must be refused with 404 before reaching any upstream.
pub fn unknown_model_refused(status: u16, upstream: Option<&str>) -> Verdict {
    match (status, upstream) {
        (404, None) => Ok("404 from the gateway, no upstream reached".to_owned()),
        (404, Some(mock)) => Err(format!(
            "404, but it came from upstream `{mock}`: the gateway routed an unknown model"
        )),
        (other, _) => Err(format!(
            "status {other}, expected 404 \"No matching route found\""
        )),
    }
}

/// A request without a valid client key must be refused by the gateway itself: 401, and no
/// upstream reached. `attempts` are `(what was sent, status, which mock answered)`.
pub fn refused_without_key(attempts: &[(String, u16, Option<String>)]) -> Verdict {
    if attempts.is_empty() {
        return Err("nothing was sent".to_owned());
    }
    let wrong: Vec<String> = attempts
        .iter()
        .filter_map(|(what, status, upstream)| match (status, upstream) {
            (401, None) => None,
            (status, Some(mock)) => Some(format!("{what}: {status} from upstream `{mock}`")),
            (status, None) => Some(format!("{what}: {status}, expected 401")),
        })
        .collect();
    if wrong.is_empty() {
        let what: Vec<&str> = attempts.iter().map(|(what, ..)| what.as_str()).collect();
        Ok(format!("401 from the gateway for {}", what.join("; ")))
    } else {
        Err(wrong.join("; "))
    }
}

/// The failover verdict over the attempts made after the first deployment was stopped, one
/// [`routed_to`] verdict each, in order; the harness stops at the first success. With a
/// failover policy that retries connect failures on the next priority (`first_try`), the
/// first request must already succeed: the client never sees the dead deployment.
pub fn failover(attempts: &[Verdict], first_try: bool) -> Verdict {
    let Some(index) = attempts.iter().position(Result::is_ok) else {
        return Err(match attempts.last() {
            Some(Err(last)) => format!(
                "no request succeeded in {} tries; last: {last}",
                attempts.len()
            ),
            _ => "no request was made".to_owned(),
        });
    };
    let detail = attempts[index].clone().unwrap_or_default();
    match (index, first_try) {
        (0, _) => Ok(format!("first request: {detail}")),
        (n, true) => Err(format!(
            "only request {} succeeded ({detail}); the failover policy should have retried the first on the next priority: {}",
            n + 1,
            attempts[0].clone().err().unwrap_or_default()
        )),
        (n, false) => Ok(format!("request {}: {detail}", n + 1)),
    }
}

/// One budget rule reduced to numbers: its limit and what one request costs under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge {
    pub limit: u64,
    pub per_request: u64,
}

/// What one response costs under a rule, given the usage the mock reports.
/// `None` for CEL costs, which the harness cannot predict.
pub fn cost_of(cost: CostType, usage: Usage) -> Option<u64> {
    match cost {
        CostType::InputToken => Some(usage.prompt_tokens),
        CostType::OutputToken => Some(usage.completion_tokens),
        CostType::TotalToken => Some(usage.total()),
        // The mock reports no cached tokens.
        CostType::CachedInputToken => Some(0),
        CostType::Cel => None,
    }
}

/// The 1-based index of the first request the gateway must refuse.
///
/// The cost is charged from the *response* (`cost.request.number: 0`), so request `k` is
/// admitted while the tokens charged by requests `1..k` do not exceed the limit; the request
/// that crosses the budget still succeeds and the next one gets 429. With several rules the
/// first to bite wins. `None` if no rule ever bites.
pub fn first_refused(charges: &[Charge]) -> Option<u64> {
    charges
        .iter()
        .filter(|c| c.per_request > 0)
        .map(|c| c.limit / c.per_request + 2)
        .min()
}

/// Usage that makes the cheapest budget bite on the third request without ever landing
/// exactly on a limit (where `>` versus `>=` would decide): each request costs just over half
/// of the limit, and of the rules' cost types only the one being exercised is charged.
pub fn usage_for_budget(limit: u64, cost: CostType) -> Option<Usage> {
    if limit < 3 {
        return None;
    }
    let per_request = limit / 2 + 1;
    match cost {
        CostType::InputToken | CostType::TotalToken => Some(Usage {
            prompt_tokens: per_request,
            completion_tokens: 0,
        }),
        CostType::OutputToken => Some(Usage {
            prompt_tokens: 0,
            completion_tokens: per_request,
        }),
        CostType::CachedInputToken | CostType::Cel => None,
    }
}

/// "Over budget → 200 then 429 for that user, and another user is unaffected".
/// `statuses` are the statuses of requests 1, 2, … for one user; `control` is one request by a
/// fresh user after them.
pub fn budget_bites(expected_first_refused: u64, statuses: &[u16], control: u16) -> Verdict {
    let refused_at =
        usize::try_from(expected_first_refused).map_err(|_| "absurd budget".to_owned())?;
    if refused_at < 2 || statuses.len() < refused_at {
        return Err(format!(
            "need at least {refused_at} requests to judge, got {}",
            statuses.len()
        ));
    }
    for (i, status) in statuses[..refused_at - 1].iter().enumerate() {
        if *status != 200 {
            return Err(format!(
                "request {} got {status} while still within budget (the crossing request must succeed too)",
                i + 1
            ));
        }
    }
    match statuses[refused_at - 1] {
        429 => {}
        200 => {
            return Err(format!(
                "request {refused_at} got 200: the budget did not bite"
            ));
        }
        other => return Err(format!("request {refused_at} got {other}, expected 429")),
    }
    if control != 200 {
        return Err(format!(
            "a different user got {control}: the budget is not per user"
        ));
    }
    Ok(format!(
        "{} × 200 then 429 on request {refused_at}; another user still gets 200",
        refused_at - 1
    ))
}

/// The tool names a client must see on the gateway's MCP endpoint:
/// `<backend>__<tool>` for every served tool its backend's selector admits.
///
/// `includeRegex` uses Go `regexp.MatchString` semantics upstream: unanchored, RE2 syntax,
/// which is what the `regex` crate's `is_match` does.
pub fn expected_tools(
    backends: &[McpBackend],
    served: &BTreeMap<String, Vec<String>>,
) -> Result<BTreeSet<String>, String> {
    let mut expected = BTreeSet::new();
    for backend in backends {
        let tools = served.get(&backend.name).map_or(&[][..], Vec::as_slice);
        let admit: Box<dyn Fn(&str) -> bool> = match &backend.selector {
            ToolSelector::All => Box::new(|_| true),
            ToolSelector::Include(names) => {
                let names = names.clone();
                Box::new(move |tool| names.iter().any(|n| n == tool))
            }
            ToolSelector::IncludeRegex(patterns) => {
                let regexes = patterns
                    .iter()
                    .map(|p| {
                        Regex::new(p).map_err(|err| {
                            format!("backend `{}`: bad includeRegex `{p}`: {err}", backend.name)
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Box::new(move |tool| regexes.iter().any(|r| r.is_match(tool)))
            }
        };
        for tool in tools.iter().filter(|t| admit(t)) {
            expected.insert(format!("{}__{tool}", backend.name));
        }
    }
    Ok(expected)
}

/// `tools/list` on the gateway must show exactly the expected names.
pub fn tools_match(expected: &BTreeSet<String>, listed: &[String]) -> Verdict {
    let listed_set: BTreeSet<String> = listed.iter().cloned().collect();
    let missing: Vec<&String> = expected.difference(&listed_set).collect();
    let unexpected: Vec<&String> = listed_set.difference(expected).collect();
    if expected.is_empty() {
        return Err("the configuration admits no tool at all; nothing to check".to_owned());
    }
    if missing.is_empty() && unexpected.is_empty() {
        Ok(format!("tools/list shows {}", listed.join(", ")))
    } else {
        Err(format!("missing {missing:?}, unexpected {unexpected:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::Host;

    fn recorded(path: &str, status: u16, headers: &[(&str, &str)], query: &str) -> Recorded {
        Recorded {
            method: "POST".into(),
            path: path.into(),
            query: Some(query.into()),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            body: "{}".into(),
            status,
        }
    }

    #[test]
    fn routing() {
        let path = "/openai/deployments/gpt-4/chat/completions";
        let good = [recorded(
            path,
            200,
            &[("api-key", "k1")],
            "api-version=2025-01-01-preview",
        )];
        let verdict = routed_to(
            &Route {
                model: "gpt-4",
                deployment: "gpt-4",
                upstream: "azure-a",
                api_key: "k1",
                api_version: "2025-01-01-preview",
            },
            200,
            Some("azure-a"),
            &good,
        );
        assert!(verdict.is_ok(), "{verdict:?}");
        // Wrong mock answered.
        assert!(
            routed_to(
                &Route {
                    model: "gpt-4",
                    deployment: "gpt-4",
                    upstream: "azure-a",
                    api_key: "k1",
                    api_version: "2025-01-01-preview"
                },
                200,
                Some("azure-b"),
                &good
            )
            .is_err()
        );
        // Right mock, wrong key (the mock would have refused, but the verdict checks anyway).
        assert!(
            routed_to(
                &Route {
                    model: "gpt-4",
                    deployment: "gpt-4",
                    upstream: "azure-a",
                    api_key: "k2",
                    api_version: "2025-01-01-preview"
                },
                200,
                Some("azure-a"),
                &good
            )
            .is_err()
        );
        // The key went as a bearer token too.
        let leaky = [recorded(
            path,
            200,
            &[("api-key", "k1"), ("authorization", "Bearer x")],
            "api-version=2025-01-01-preview",
        )];
        assert!(
            routed_to(
                &Route {
                    model: "gpt-4",
                    deployment: "gpt-4",
                    upstream: "azure-a",
                    api_key: "k1",
                    api_version: "2025-01-01-preview"
                },
                200,
                Some("azure-a"),
                &leaky
            )
            .is_err()
        );
        // api-version from another backend.
        assert!(
            routed_to(
                &Route {
                    model: "gpt-4",
                    deployment: "gpt-4",
                    upstream: "azure-a",
                    api_key: "k1",
                    api_version: "2024-02-01"
                },
                200,
                Some("azure-a"),
                &good
            )
            .is_err()
        );
        // modelNameOverride: the deployment differs from the model.
        let err = routed_to(
            &Route {
                model: "gpt-4",
                deployment: "prod-gpt4",
                upstream: "azure-a",
                api_key: "k1",
                api_version: "2025-01-01-preview",
            },
            200,
            Some("azure-a"),
            &good,
        )
        .unwrap_err();
        assert!(
            err.contains("recorded no successful /openai/deployments/prod-gpt4/chat/completions"),
            "{err}"
        );
        assert!(
            routed_to(
                &Route {
                    model: "gpt-4",
                    deployment: "gpt-4",
                    upstream: "azure-a",
                    api_key: "k1",
                    api_version: "2025-01-01-preview"
                },
                401,
                Some("azure-a"),
                &good
            )
            .is_err()
        );
    }

    #[test]
    fn unknown_model() {
        assert!(unknown_model_refused(404, None).is_ok());
        assert!(unknown_model_refused(404, Some("azure-a")).is_err());
        assert!(unknown_model_refused(200, Some("azure-a")).is_err());
    }

    #[test]
    fn first_refused_follows_response_charging() {
        // limit 1000, 600 per request: 0 ≤ 1000 admit, 600 ≤ 1000 admit (crosses), 1200 > 1000 refuse.
        assert_eq!(
            first_refused(&[Charge {
                limit: 1000,
                per_request: 600
            }]),
            Some(3)
        );
        // 300 per request: admitted while 0, 300, 600, 900 ≤ 1000; the fifth sees 1200.
        assert_eq!(
            first_refused(&[Charge {
                limit: 1000,
                per_request: 300
            }]),
            Some(5)
        );
        // The strictest rule wins; a rule that charges nothing never bites.
        assert_eq!(
            first_refused(&[
                Charge {
                    limit: 1000,
                    per_request: 300
                },
                Charge {
                    limit: 100,
                    per_request: 60
                },
                Charge {
                    limit: 1,
                    per_request: 0
                }
            ]),
            Some(3)
        );
        assert_eq!(
            first_refused(&[Charge {
                limit: 10,
                per_request: 0
            }]),
            None
        );
    }

    #[test]
    fn chosen_usage_never_lands_on_the_limit() {
        for limit in [3u64, 4, 100, 1000, 50_000, 100_000] {
            for cost in [
                CostType::InputToken,
                CostType::OutputToken,
                CostType::TotalToken,
            ] {
                let usage = usage_for_budget(limit, cost).unwrap();
                let per_request = cost_of(cost, usage).unwrap();
                assert_ne!(limit % per_request, 0, "limit {limit} {cost:?}");
                assert_ne!((2 * per_request), limit);
                assert_eq!(
                    first_refused(&[Charge { limit, per_request }]),
                    Some(3),
                    "limit {limit} {cost:?}"
                );
            }
        }
        assert_eq!(usage_for_budget(2, CostType::TotalToken), None);
        assert_eq!(usage_for_budget(1000, CostType::Cel), None);
    }

    #[test]
    fn budget_verdicts() {
        assert!(budget_bites(3, &[200, 200, 429], 200).is_ok());
        let err = budget_bites(3, &[200, 200, 200], 200).unwrap_err();
        assert!(err.contains("did not bite"), "{err}");
        // Refusing the crossing request means the gateway charged the request, not the response.
        assert!(budget_bites(3, &[200, 429, 429], 200).is_err());
        assert!(
            budget_bites(3, &[200, 200, 429], 429)
                .unwrap_err()
                .contains("not per user")
        );
        assert!(budget_bites(3, &[200, 200, 503], 200).is_err());
        assert!(budget_bites(3, &[200, 200], 200).is_err());
    }

    #[test]
    fn client_key_refusals() {
        let ok = [
            ("no key".to_owned(), 401, None),
            ("unknown key".to_owned(), 401, None),
        ];
        assert!(
            refused_without_key(&ok)
                .unwrap()
                .contains("no key; unknown key")
        );
        // Let through to an upstream (even one that then refused) is a failure.
        let leaked = [("no key".to_owned(), 401, Some("azure-a".to_owned()))];
        assert!(
            refused_without_key(&leaked)
                .unwrap_err()
                .contains("from upstream `azure-a`")
        );
        let open = [
            ("no key".to_owned(), 401, None),
            ("unknown key".to_owned(), 200, None),
        ];
        assert_eq!(
            refused_without_key(&open).unwrap_err(),
            "unknown key: 200, expected 401"
        );
        assert!(refused_without_key(&[]).is_err());
    }

    #[test]
    fn failover_verdicts() {
        let ok = || Ok::<String, String>("`gpt-4o` → azure-b".to_owned());
        let failed = || Err::<String, String>("status 503".to_owned());
        assert_eq!(
            failover(&[ok()], true).unwrap(),
            "first request: `gpt-4o` → azure-b"
        );
        // A client-visible failure first: fine without a retry policy, a failure with one.
        assert_eq!(
            failover(&[failed(), ok()], false).unwrap(),
            "request 2: `gpt-4o` → azure-b"
        );
        let err = failover(&[failed(), ok()], true).unwrap_err();
        assert!(
            err.contains("only request 2 succeeded") && err.ends_with("status 503"),
            "{err}"
        );
        assert!(
            failover(&[failed(), failed()], false)
                .unwrap_err()
                .contains("in 2 tries")
        );
        assert!(failover(&[], false).is_err());
    }

    fn backend(name: &str, selector: ToolSelector) -> McpBackend {
        McpBackend {
            name: name.into(),
            host: Host {
                hostname: "mcp.e2e.test".into(),
                port: 443,
            },
            path: "/mcp".into(),
            selector,
            api_key_header: None,
        }
    }

    #[test]
    fn tool_filtering_and_prefixing() {
        let served: BTreeMap<String, Vec<String>> = [
            (
                "github".to_owned(),
                vec![
                    "list_issues".into(),
                    "get_issue".into(),
                    "create_pull_request".into(),
                    "search_code".into(),
                ],
            ),
            ("docs".to_owned(), vec!["resolve".into(), "fetch".into()]),
        ]
        .into();
        let backends = vec![
            backend(
                "github",
                ToolSelector::IncludeRegex(vec![".*issues?.*".into()]),
            ),
            backend("docs", ToolSelector::All),
        ];
        let expected = expected_tools(&backends, &served).unwrap();
        let names: Vec<&str> = expected.iter().map(String::as_str).collect();
        assert_eq!(
            names,
            vec![
                "docs__fetch",
                "docs__resolve",
                "github__get_issue",
                "github__list_issues"
            ]
        );
        // Unanchored, like Go's MatchString: `issue` matches inside `get_issue`.
        let only = expected_tools(
            &[backend(
                "github",
                ToolSelector::IncludeRegex(vec!["issue".into()]),
            )],
            &served,
        )
        .unwrap();
        assert_eq!(only.len(), 2);
        let exact = expected_tools(
            &[backend(
                "github",
                ToolSelector::Include(vec!["search_code".into(), "nope".into()]),
            )],
            &served,
        )
        .unwrap();
        assert_eq!(
            exact.into_iter().collect::<Vec<_>>(),
            vec!["github__search_code".to_owned()]
        );
        assert!(
            expected_tools(
                &[backend(
                    "github",
                    ToolSelector::IncludeRegex(vec!["(".into()])
                )],
                &served
            )
            .is_err()
        );

        let listed: Vec<String> = vec![
            "github__list_issues".into(),
            "github__get_issue".into(),
            "docs__resolve".into(),
            "docs__fetch".into(),
        ];
        assert!(tools_match(&expected, &listed).is_ok());
        let unfiltered = [listed.clone(), vec!["github__search_code".into()]].concat();
        assert!(
            tools_match(&expected, &unfiltered)
                .unwrap_err()
                .contains("unexpected [\"github__search_code\"]")
        );
        let unprefixed: Vec<String> = vec![
            "list_issues".into(),
            "get_issue".into(),
            "resolve".into(),
            "fetch".into(),
        ];
        assert!(tools_match(&expected, &unprefixed).is_err());
        assert!(tools_match(&BTreeSet::new(), &[]).is_err());
    }
}
