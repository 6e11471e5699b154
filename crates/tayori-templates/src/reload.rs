//! Templates that reload without a restart: [`ReloadableTemplates`] swaps in a newly loaded
//! [`TemplateSet`] at once, or keeps the one in use when the new one has problems, and
//! [`TemplateWatcher`] reloads it when files under the templates directory change.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tayori_app::ports::{
    Preview, PreviewCatalog, PreviewError, PreviewRequest, RenderError, RenderedEmail,
    TemplatePreviews, TemplateRenderer, TemplatesVersion, TenantDirectory, TenantProfile,
};
use tayori_domain::{Event, EventType, TenantId};

use crate::{LoadError, TemplateSet};

/// The templates of a directory, reloadable while they are in use.
///
/// Every port call uses the set in use at that moment (a render never sees half of a reload);
/// [`reload`](Self::reload) loads the directory again and swaps the new set in only when it
/// has no problem, so a broken edit never replaces working templates. What a failed reload
/// found stays visible in [`version`](TemplatePreviews::version) until a reload succeeds.
pub struct ReloadableTemplates {
    dir: PathBuf,
    state: RwLock<State>,
    /// One reload at a time, so two reloads cannot swap their sets in the wrong order.
    reloading: Mutex<()>,
}

struct State {
    set: Arc<TemplateSet>,
    version: u64,
    reload_error: Option<String>,
}

impl ReloadableTemplates {
    /// Loads `dir` (see [`TemplateSet::load`]).
    pub fn load(dir: &Path) -> Result<Self, LoadError> {
        let set = TemplateSet::load(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            state: RwLock::new(State { set: Arc::new(set), version: 1, reload_error: None }),
            reloading: Mutex::new(()),
        })
    }

    /// The directory it loads from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The set in use now.
    pub fn current(&self) -> Arc<TemplateSet> {
        Arc::clone(&self.state.read().unwrap_or_else(PoisonError::into_inner).set)
    }

    /// Loads the directory again. On success the new set is used from the next call on and
    /// its version is returned; on failure the set in use stays, and the problems are returned
    /// (and logged, and shown by [`version`](TemplatePreviews::version)). For `tayori dev`'s
    /// file watcher, a worker's SIGHUP or an admin call.
    pub fn reload(&self) -> Result<u64, LoadError> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(PoisonError::into_inner);
        match TemplateSet::load(&self.dir) {
            Ok(set) => {
                let tenants = set.tenants.len();
                let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
                state.set = Arc::new(set);
                state.version += 1;
                state.reload_error = None;
                tayori_app::telemetry::template_reloaded(true);
                tracing::info!(
                    dir = %self.dir.display(),
                    version = state.version,
                    tenants,
                    "templates reloaded"
                );
                Ok(state.version)
            }
            Err(error) => {
                let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
                state.reload_error = Some(error.to_string());
                tayori_app::telemetry::template_reloaded(false);
                tracing::warn!(
                    dir = %self.dir.display(),
                    version = state.version,
                    problems = error.problems().len(),
                    error = %error,
                    "templates reload failed; the templates loaded before stay in use"
                );
                Err(error)
            }
        }
    }

    /// Reloads whenever a file under the directory changes, after 200 ms without further
    /// changes (an editor saving several files, a `git checkout`), until the returned watcher is
    /// dropped. Uses the operating system's file notifications (inotify on Linux).
    pub fn watch(self: &Arc<Self>) -> std::io::Result<TemplateWatcher> {
        self.watch_with(Duration::from_millis(200))
    }

    fn watch_with(self: &Arc<Self>, quiet: Duration) -> std::io::Result<TemplateWatcher> {
        let (changes, changed) = mpsc::channel::<()>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // Reading the files (as a reload does) must not trigger a reload.
                let relevant = match event {
                    Ok(event) => matches!(
                        event.kind,
                        EventKind::Create(_)
                            | EventKind::Remove(_)
                            | EventKind::Any
                            | EventKind::Modify(
                                notify::event::ModifyKind::Data(_)
                                    | notify::event::ModifyKind::Name(_)
                                    | notify::event::ModifyKind::Any
                            )
                    ),
                    Err(_) => true,
                };
                if relevant {
                    let _ = changes.send(());
                }
            })
            .map_err(std::io::Error::other)?;
        watcher.watch(&self.dir, RecursiveMode::Recursive).map_err(std::io::Error::other)?;
        let templates: Weak<Self> = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("tayori-templates-watch".into())
            .spawn(move || watch_loop(&changed, &templates, quiet))?;
        tracing::debug!(dir = %self.dir.display(), "watching the templates for changes");
        Ok(TemplateWatcher { _watcher: watcher })
    }
}

/// Waits for a change, then for `quiet` without one, then reloads; ends when the watcher is
/// dropped (the channel closes) or the templates are.
fn watch_loop(
    changed: &mpsc::Receiver<()>,
    templates: &Weak<ReloadableTemplates>,
    quiet: Duration,
) {
    while changed.recv().is_ok() {
        loop {
            match changed.recv_timeout(quiet) {
                Ok(()) => continue,
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        let Some(templates) = templates.upgrade() else { return };
        // The outcome is logged and kept for `version()`.
        let _ = templates.reload();
    }
}

/// Keeps a [`ReloadableTemplates`] reloading on file changes while it lives.
pub struct TemplateWatcher {
    _watcher: notify::RecommendedWatcher,
}

impl std::fmt::Debug for TemplateWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TemplateWatcher")
    }
}

impl std::fmt::Debug for ReloadableTemplates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let version = self.version();
        f.debug_struct("ReloadableTemplates")
            .field("dir", &self.dir)
            .field("version", &version.version)
            .field("reload_error", &version.reload_error.is_some())
            .finish()
    }
}

impl TemplateRenderer for ReloadableTemplates {
    fn render(&self, tenant: &TenantProfile, event: &Event) -> Result<RenderedEmail, RenderError> {
        self.current().render(tenant, event)
    }

    fn sensitive_variables(&self, tenant: &TenantId, event_type: &EventType) -> Vec<String> {
        self.current().sensitive_variables(tenant, event_type)
    }

    fn message_class(
        &self,
        tenant: &TenantId,
        event_type: &EventType,
    ) -> tayori_app::ports::MessageClass {
        self.current().message_class(tenant, event_type)
    }
}

impl TenantDirectory for ReloadableTemplates {
    fn tenant(&self, id: &TenantId) -> Option<Arc<TenantProfile>> {
        self.current().tenant(id)
    }
}

impl TemplatePreviews for ReloadableTemplates {
    fn catalog(&self) -> PreviewCatalog {
        let (set, version) = {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            (Arc::clone(&state.set), version_of(&state))
        };
        set.catalog_at(version)
    }

    fn preview(&self, request: &PreviewRequest) -> Result<Preview, PreviewError> {
        self.current().preview_of(request)
    }

    fn version(&self) -> TemplatesVersion {
        version_of(&self.state.read().unwrap_or_else(PoisonError::into_inner))
    }
}

fn version_of(state: &State) -> TemplatesVersion {
    TemplatesVersion { version: state.version, reload_error: state.reload_error.clone() }
}
