//! `tayori templates check`: load everything, then render every sample of every event type in
//! every locale it has, as the worker would; report every problem as `file:line: message`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::TemplateSet;
use crate::load::{LoadError, LoadProblem, load_dir};
use crate::locate::line_of_pointer;
use crate::render::render_event;
use crate::sample::sample_event;

/// What [`TemplateSet::check`] found.
#[derive(Debug)]
pub struct CheckReport {
    /// Every problem, in the order the directory was walked; none when the templates can ship.
    pub problems: Vec<LoadProblem>,
    /// What was checked.
    pub summary: CheckSummary,
    set: TemplateSet,
}

/// What a check covered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckSummary {
    /// Tenant directories found.
    pub tenants: usize,
    /// Event types of the tenants that loaded.
    pub event_types: usize,
    /// Sample files that passed their checks and were rendered.
    pub samples: usize,
    /// Emails rendered (each sample in each of its event type's locales).
    pub renders: usize,
    /// `tenant/event-type` of the event types that have templates but are not in their tenant's
    /// `event_types` yet: checked, but not sent.
    pub not_accepted: Vec<String>,
}

impl CheckReport {
    /// True when there is no problem.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The tenants that loaded, even when there are problems (a tenant with a problem in its
    /// settings or a template that does not compile is left out; a failing sample is not).
    pub fn templates(&self) -> &TemplateSet {
        &self.set
    }

    /// The templates, when there is no problem.
    pub fn into_set(self) -> Result<TemplateSet, LoadError> {
        if self.problems.is_empty() {
            tracing::info!(
                tenants = self.summary.tenants,
                event_types = self.summary.event_types,
                renders = self.summary.renders,
                "templates loaded"
            );
            Ok(self.set)
        } else {
            Err(LoadError::new(self.problems))
        }
    }

    /// The last line of the text report: `ok: 2 tenants, 12 event types, 24 samples, 48
    /// renders` or `3 problems in ...`.
    pub fn summary_line(&self) -> String {
        let s = &self.summary;
        let covered = format!(
            "{} tenant{}, {} event type{}, {} sample{}, {} render{}",
            s.tenants,
            plural(s.tenants),
            s.event_types,
            plural(s.event_types),
            s.samples,
            plural(s.samples),
            s.renders,
            plural(s.renders)
        );
        let mut line = if self.is_ok() {
            format!("ok: {covered}")
        } else {
            let n = self.problems.len();
            format!("{n} problem{} ({covered})", plural(n))
        };
        if !s.not_accepted.is_empty() {
            line.push_str(&format!(
                "; not in event_types yet (checked, not sent): {}",
                s.not_accepted.join(", ")
            ));
        }
        line
    }

    /// The report as JSON, for CI: `{"ok": …, "problems": [{"file", "line", "message"}],
    /// "summary": {…}}`.
    pub fn to_json(&self) -> Value {
        let problems: Vec<Value> = self
            .problems
            .iter()
            .map(|p| {
                json!({
                    "file": p.path.display().to_string(),
                    "line": p.line,
                    "message": p.message,
                })
            })
            .collect();
        let s = &self.summary;
        json!({
            "ok": self.is_ok(),
            "problems": problems,
            "summary": {
                "tenants": s.tenants,
                "event_types": s.event_types,
                "samples": s.samples,
                "renders": s.renders,
                "not_accepted": s.not_accepted,
            },
        })
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

impl TemplateSet {
    /// Checks every tenant under `dir` (normally `templates/`): loads everything as
    /// [`TemplateSet::load`] does, then renders every sample of every event type in every locale
    /// it has templates for, reporting every problem at once.
    pub fn check(dir: &Path) -> CheckReport {
        let loaded = load_dir(dir);
        let mut problems = loaded.problems.0;
        let set = loaded.set;
        let mut summary = CheckSummary { tenants: loaded.tenants_found, ..Default::default() };
        // A problem found with several samples or locales is reported once.
        let mut seen: HashSet<(PathBuf, Option<usize>, String)> = HashSet::new();
        for (tenant_id, tenant) in &set.tenants {
            for (event_type, files) in &tenant.events {
                summary.event_types += 1;
                if !tenant.accepted.contains(event_type) {
                    summary.not_accepted.push(format!("{tenant_id}/{event_type}"));
                }
                for (name, sample) in &files.samples {
                    summary.samples += 1;
                    for locale in files.variants.keys() {
                        let event = match sample_event(
                            tenant_id,
                            event_type,
                            name,
                            &sample.data,
                            locale.as_ref(),
                        ) {
                            Ok(event) => event,
                            Err((pointer, reason)) => {
                                // Checked at load without a locale; only the locale can fail.
                                let line = line_of_pointer(&sample.text, &pointer).or(Some(1));
                                problems.push(LoadProblem {
                                    path: dir.join(&sample.path),
                                    line,
                                    message: reason,
                                });
                                continue;
                            }
                        };
                        summary.renders += 1;
                        let Err(failure) = render_event(tenant, &tenant.profile, files, &event)
                        else {
                            continue;
                        };
                        let path = dir.join(failure.file.as_deref().unwrap_or(&files.dir));
                        let key = (path.clone(), failure.line, failure.message.clone());
                        if !seen.insert(key) {
                            continue;
                        }
                        let locale = locale.as_ref().map_or_else(
                            || tenant.profile.default_locale.to_string(),
                            ToString::to_string,
                        );
                        problems.push(LoadProblem {
                            path,
                            line: failure.line,
                            message: format!(
                                "{} (rendering {event_type} sample {name} in {locale})",
                                failure.message
                            ),
                        });
                    }
                }
            }
        }
        CheckReport { problems, summary, set }
    }
}
