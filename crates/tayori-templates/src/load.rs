//! Reading `templates/` into a [`TemplateSet`], reporting every problem at once.
//!
//! The walk decides at each level what it expects:
//! - the templates directory: one directory per tenant, and `_shared/` (layouts and partials
//!   every tenant may use: `_shared/_layouts/`, `_shared/_partials/`);
//! - a tenant directory: `tenant.toml`, `_layouts/` and `_partials/` (which win over the shared
//!   files of the same name), and one directory per event type;
//! - an event-type directory: `subject[.<locale>].txt`, `body[.<locale>].html`,
//!   `body[.<locale>].txt`, `event.toml`, `schema.json` and `samples/<name>.json`.
//!
//! Hidden files and directories and Markdown notes are skipped; any other file is an error, so
//! that a typo (`body.ja.htm`, `tenant.tml`, `_layout/`) is caught rather than ignored.
//!
//! Each template is parsed alone first (so a syntax error is reported with its file and line),
//! then has the tenant's stylesheet inlined into it when it is HTML (see `inline`), then the
//! tenant's templates are compiled together into its tera instance.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use tayori_domain::{EventType, Locale, TenantId};

use crate::config::{EventConfig, EventSettings, FieldError, TenantConfig, TenantSettings};
use crate::locate::{line_at, line_of_pointer};
use crate::render::locale_chain;
use crate::sample::{Sample, parse_sample, sample_event};
use crate::{
    EventTemplates, LocaleKey, SourceText, TemplateFile, TemplateSet, TenantTemplates,
    VariableSchema, Variant,
};

/// Why the templates directory cannot be used: every problem found, each naming its file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct LoadError {
    problems: Vec<LoadProblem>,
}

impl LoadError {
    pub(crate) fn new(problems: Vec<LoadProblem>) -> Self {
        Self { problems }
    }

    /// The problems, in the order the directory was walked (sorted by name).
    pub fn problems(&self) -> &[LoadProblem] {
        &self.problems
    }
}

/// One line per problem: `templates/acme-invest/tenant.toml:2: from: address must contain ...`.
impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.problems.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// One problem with one file or directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LoadProblem {
    /// The file or directory, as the templates directory was given joined with the file's path
    /// in it. A missing file is named by the path it should have.
    pub path: PathBuf,
    /// The 1-based line in the file the problem is on. Every problem in a file that exists has
    /// one when it can be told (line 1 for a problem with the file as a whole, such as its
    /// name); problems with a directory or a missing file have none.
    pub line: Option<usize>,
    /// What is wrong, on one line.
    pub message: String,
}

/// `path:line: message`, or `path: message` without a line.
impl fmt::Display for LoadProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path.display(), self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

/// The problems found so far, each once (a shared layout's problem is found for every tenant).
#[derive(Default)]
pub(crate) struct Problems(pub(crate) Vec<LoadProblem>);

impl Problems {
    pub(crate) fn push(&mut self, path: &Path, line: Option<usize>, message: impl Into<String>) {
        let problem = LoadProblem { path: path.to_owned(), line, message: message.into() };
        if !self.0.contains(&problem) {
            self.0.push(problem);
        }
    }
}

/// What loading produced: every tenant that compiled, and every problem.
pub(crate) struct Loaded {
    pub(crate) set: TemplateSet,
    pub(crate) problems: Problems,
    /// Tenants found, including those that did not load.
    pub(crate) tenants_found: usize,
}

impl TemplateSet {
    /// Loads and checks every tenant under `dir` (normally `templates/`): what
    /// [`TemplateSet::check`] reports must be empty.
    ///
    /// It fails, listing every problem rather than the first, when a settings file is missing,
    /// unparseable or has unknown keys or invalid values, when a directory name is not a tenant
    /// id or an event type, when a file is not one of the expected names, when a locale has a
    /// subject without an HTML body or the reverse, when an event type has no template for the
    /// tenant's default locale nor a locale-neutral one, when a template does not compile or its
    /// CSS cannot be inlined, when an event type has no sample, or when a sample does not match
    /// the variable schema or does not render in one of the event type's locales.
    pub fn load(dir: &Path) -> Result<TemplateSet, LoadError> {
        Self::check(dir).into_set()
    }
}

/// Reads and compiles everything under `dir`; the samples are not rendered yet.
pub(crate) fn load_dir(dir: &Path) -> Loaded {
    let mut problems = Problems::default();
    let mut tenants = BTreeMap::new();
    let mut tenants_found = 0;
    let entries = read_dir_sorted(dir, &mut problems);
    let mut shared = Library::default();
    if let Some(entry) = entries.iter().find(|e| e.is_dir && e.name == SHARED_DIR) {
        load_shared(dir, &entry.path, &mut shared, &mut problems);
    }
    for entry in &entries {
        if entry.is_dir {
            if entry.name == SHARED_DIR || entry.name.starts_with('.') {
                continue;
            }
            if entry.name.starts_with('_') {
                problems.push(
                    &entry.path,
                    None,
                    "unexpected directory: the only reserved directory here is _shared/ (layouts \
                     and partials every tenant may use)",
                );
                continue;
            }
            tenants_found += 1;
            if let Some(tenant) = load_tenant(dir, entry, &shared, &mut problems) {
                tenants.insert(tenant.profile.id.clone(), tenant);
            }
        } else if !is_ignored_file(&entry.name) {
            problems.push(
                &entry.path,
                Some(1),
                "unexpected file: the templates directory holds one directory per tenant and \
                 _shared/",
            );
        }
    }
    Loaded { set: TemplateSet { tenants }, problems, tenants_found }
}

struct Entry {
    name: String,
    path: PathBuf,
    is_dir: bool,
}

/// The entries of a directory sorted by name (so reports are stable), following symlinks.
fn read_dir_sorted(dir: &Path, problems: &mut Problems) -> Vec<Entry> {
    let read = match fs::read_dir(dir) {
        Ok(read) => read,
        Err(error) => {
            problems.push(dir, None, format!("cannot read directory: {error}"));
            return Vec::new();
        }
    };
    let mut entries = Vec::new();
    for entry in read {
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => {
                problems.push(dir, None, format!("cannot read directory: {error}"));
                continue;
            }
        };
        let path = entry.path();
        let Ok(name) = entry.file_name().into_string() else {
            problems.push(&path, None, "file name is not UTF-8");
            continue;
        };
        match fs::metadata(&path) {
            Ok(metadata) => entries.push(Entry { name, path, is_dir: metadata.is_dir() }),
            Err(error) => problems.push(&path, None, format!("cannot read: {error}")),
        }
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    entries
}

/// Hidden files (`.gitkeep`, editor files) and Markdown notes (`README.md`).
fn is_ignored_file(file_name: &str) -> bool {
    file_name.starts_with('.') || file_name.ends_with(".md")
}

/// A file's text; a problem (and `None`) when it cannot be read.
fn read_text(path: &Path, problems: &mut Problems) -> Option<String> {
    match fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(error) => {
            problems.push(path, None, format!("cannot read: {error}"));
            None
        }
    }
}

/// The path of `path` relative to the templates directory, with `/`: how messages at render
/// time name a file.
fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

const SHARED_DIR: &str = "_shared";
const LAYOUTS_DIR: &str = "_layouts";
const PARTIALS_DIR: &str = "_partials";
const STYLESHEET: &str = "style.css";
const TENANT_FILE: &str = "tenant.toml";
const EVENT_FILE: &str = "event.toml";
const SCHEMA_FILE: &str = "schema.json";
const SAMPLES_DIR: &str = "samples";

/// A template file as read, before it is compiled.
#[derive(Clone)]
struct Source {
    /// The name registered in tera: `_layouts/base.html`, `acme-invest/e1/body.ja.html`.
    name: String,
    /// The file.
    path: PathBuf,
    /// `path` relative to the templates directory.
    rel: String,
    /// As written.
    text: String,
}

impl Source {
    fn is_html(&self) -> bool {
        self.name.ends_with(".html")
    }
}

/// Layouts, partials and the stylesheet: a tenant's own, or the shared ones.
#[derive(Default, Clone)]
struct Library {
    /// By tera name (`_layouts/base.html`, `_partials/button.html`).
    files: BTreeMap<String, Source>,
    /// `_layouts/style.css`: the path and the CSS.
    stylesheet: Option<(PathBuf, String)>,
}

/// The CSS without its `/* comments */`, which would otherwise be copied into the `<style>`
/// that keeps the `@media` rules.
fn strip_css_comments(css: &str) -> String {
    let mut out = String::with_capacity(css.len());
    let mut rest = css;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        match rest[start + 2..].find("*/") {
            Some(end) => rest = &rest[start + 2 + end + 2..],
            None => rest = "",
        }
    }
    out.push_str(rest);
    out
}

/// `_shared/`: `_layouts/` and `_partials/`, nothing else.
fn load_shared(root: &Path, dir: &Path, library: &mut Library, problems: &mut Problems) {
    for entry in read_dir_sorted(dir, problems) {
        if entry.is_dir && (entry.name == LAYOUTS_DIR || entry.name == PARTIALS_DIR) {
            load_library_dir(root, &entry, library, problems);
        } else if entry.is_dir && entry.name.starts_with('.') || is_ignored_file(&entry.name) {
            continue;
        } else {
            problems.push(
                &entry.path,
                (!entry.is_dir).then_some(1),
                "unexpected entry: _shared/ holds _layouts/ and _partials/",
            );
        }
    }
}

/// One `_layouts/` or `_partials/` directory: `*.html` and `*.txt` templates, and in
/// `_layouts/` the stylesheet `style.css`.
fn load_library_dir(root: &Path, entry: &Entry, library: &mut Library, problems: &mut Problems) {
    let layouts = entry.name == LAYOUTS_DIR;
    for file in read_dir_sorted(&entry.path, problems) {
        if file.is_dir {
            if !file.name.starts_with('.') {
                problems.push(
                    &file.path,
                    None,
                    "unexpected directory: layouts and partials are files",
                );
            }
            continue;
        }
        if is_ignored_file(&file.name) {
            continue;
        }
        if layouts && file.name == STYLESHEET {
            if let Some(css) = read_text(&file.path, problems) {
                library.stylesheet = Some((file.path.clone(), strip_css_comments(&css)));
            }
            continue;
        }
        let well_named = file.name.split_once('.').is_some_and(|(stem, ext)| {
            (ext == "html" || ext == "txt" || ext.ends_with(".html") || ext.ends_with(".txt"))
                && !stem.is_empty()
                && file.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        });
        if !well_named {
            let what = if layouts {
                "<name>.html, <name>.txt and style.css"
            } else {
                "<name>.html and <name>.txt"
            };
            problems.push(
                &file.path,
                Some(1),
                format!("unexpected file: {}/ holds {what}", entry.name),
            );
            continue;
        }
        if let Some(text) = read_text(&file.path, problems) {
            let name = format!("{}/{}", entry.name, file.name);
            let rel = relative(root, &file.path);
            library.files.insert(name.clone(), Source { name, path: file.path, rel, text });
        }
    }
}

fn load_tenant(
    root: &Path,
    entry: &Entry,
    shared: &Library,
    problems: &mut Problems,
) -> Option<TenantTemplates> {
    let id = match TenantId::parse(&entry.name) {
        Ok(id) => id,
        Err(error) => {
            problems.push(&entry.path, None, format!("directory name is not a tenant id: {error}"));
            return None;
        }
    };
    let settings_path = entry.path.join(TENANT_FILE);
    let settings = load_settings(&settings_path, id.clone(), problems);
    let mut own = Library::default();
    let mut sources: Vec<Source> = Vec::new();
    let mut events = BTreeMap::new();
    for child in read_dir_sorted(&entry.path, problems) {
        if child.is_dir {
            if child.name == LAYOUTS_DIR || child.name == PARTIALS_DIR {
                load_library_dir(root, &child, &mut own, problems);
                continue;
            }
            if child.name.starts_with('.') {
                continue;
            }
            if child.name.starts_with('_') {
                problems.push(
                    &child.path,
                    None,
                    "unexpected directory: the reserved directories of a tenant are _layouts/ and \
                     _partials/",
                );
                continue;
            }
            match EventType::parse(&child.name) {
                Ok(event_type) => {
                    let event = load_event(
                        root,
                        &child.path,
                        &id,
                        &event_type,
                        settings.as_ref(),
                        &mut sources,
                        problems,
                    );
                    events.insert(event_type, event);
                }
                Err(error) => problems.push(
                    &child.path,
                    None,
                    format!("directory name is not an event type: {error}"),
                ),
            }
        } else if child.name != TENANT_FILE && !is_ignored_file(&child.name) {
            problems.push(
                &child.path,
                Some(1),
                "unexpected file: a tenant directory holds tenant.toml, _layouts/, _partials/ \
                 and one directory per event type",
            );
        }
    }

    // The tenant's layouts and partials win over the shared ones of the same name.
    let mut library = shared.clone();
    library.files.extend(own.files);
    if own.stylesheet.is_some() {
        library.stylesheet = own.stylesheet;
    }
    sources.extend(library.files.into_values());
    let css = library.stylesheet.as_ref().map(|(_, css)| css.as_str()).unwrap_or_default();

    let compiled = prepare_sources(&sources, css, library.stylesheet.as_ref(), problems);
    let settings = settings?;
    let mut accepted = BTreeSet::new();
    for event_type in &settings.event_types {
        if events.contains_key(event_type) {
            accepted.insert(event_type.clone());
        } else if let Some(text) = read_text(&settings_path, problems) {
            let error = FieldError {
                key: "event_types",
                item: Some(event_type.to_string()),
                message: String::new(),
            };
            problems.push(
                &settings_path,
                error.line(&text),
                format!(
                    "event_types: {event_type} is listed but has no directory {id}/{event_type}/"
                ),
            );
        }
    }
    let compiled = compiled?;
    // Problems with an event type's files or samples leave the tenant loaded, so that `check`
    // renders everything else and reports it all at once (loading fails on any problem anyway).
    let tera = compile(&entry.path, &sources, &compiled, problems)?;
    let sources = sources
        .into_iter()
        .map(|source| (source.name, SourceText { path: source.rel, text: source.text }))
        .collect::<HashMap<_, _>>();
    Some(TenantTemplates {
        profile: Arc::new(settings.profile),
        fallback_locales: settings.fallback_locales,
        accepted,
        tera,
        sources,
        events,
    })
}

fn load_settings(path: &Path, id: TenantId, problems: &mut Problems) -> Option<TenantSettings> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            problems.push(
                path,
                None,
                "missing: every tenant directory needs a tenant.toml with from, default_locale and \
                 event_types (see templates/README.md)",
            );
            return None;
        }
        Err(error) => {
            problems.push(path, None, format!("cannot read: {error}"));
            return None;
        }
    };
    let config = match TenantConfig::parse(&text) {
        Ok(config) => config,
        Err((line, message)) => {
            problems.push(path, line.or(Some(1)), message);
            return None;
        }
    };
    match config.into_settings(id) {
        Ok(settings) => Some(settings),
        Err(errors) => {
            for error in errors {
                problems.push(path, error.line(&text).or(Some(1)), error.message);
            }
            None
        }
    }
}

/// Parses every template alone (reporting syntax errors with their lines), then inlines the
/// stylesheet into the HTML ones. `None` when any of them has a problem.
fn prepare_sources(
    sources: &[Source],
    css: &str,
    stylesheet: Option<&(PathBuf, String)>,
    problems: &mut Problems,
) -> Option<Vec<String>> {
    let mut compiled = Vec::with_capacity(sources.len());
    let mut ok = true;
    for source in sources {
        if let Err(error) = tera::Template::new(&source.name, None, &source.text) {
            let chain = crate::error_chain(&error);
            let (line, message) = split_line(&chain);
            problems.push(&source.path, line, message);
            ok = false;
            continue;
        }
        let has_style = source.text.to_ascii_lowercase().contains("<style");
        if source.is_html() && (!css.is_empty() || has_style) {
            match crate::inline::inline_template(&source.text, css) {
                Ok(inlined) => compiled.push(inlined),
                Err(error) => {
                    let mut message = error.message;
                    if let Some((path, _)) = stylesheet {
                        message.push_str(&format!(" (stylesheet {})", path.display()));
                    }
                    problems.push(&source.path, error.line.or(Some(1)), message);
                    ok = false;
                }
            }
        } else {
            compiled.push(source.text.clone());
        }
    }
    ok.then_some(compiled)
}

/// `line 3, column 12: expected ...` → `(Some(3), "expected ... (column 12)")`.
fn split_line(message: &str) -> (Option<usize>, String) {
    let Some(rest) = message.strip_prefix("line ") else {
        return (None, message.to_owned());
    };
    let Some((line, rest)) = rest.split_once(", column ") else {
        return (None, message.to_owned());
    };
    let Some((column, rest)) = rest.split_once(": ") else {
        return (None, message.to_owned());
    };
    match line.parse() {
        Ok(line) => (Some(line), format!("{rest} (column {column})")),
        Err(_) => (None, message.to_owned()),
    }
}

/// Compiles a tenant's templates into one tera instance, all at once so that inheritance works.
/// Every template parsed alone already, so what can fail here is between templates (a parent
/// that does not exist): the problem names the file that refers to it.
fn compile(
    tenant_dir: &Path,
    sources: &[Source],
    compiled: &[String],
    problems: &mut Problems,
) -> Option<tera::Tera> {
    let mut tera = crate::engine::engine();
    let all = sources.iter().zip(compiled).map(|(s, text)| (s.name.as_str(), text.as_str()));
    let Err(error) = tera.add_raw_templates(all) else {
        return Some(tera);
    };
    let chain = crate::error_chain(&error);
    // "Template 'X' is inheriting from 'Y', which doesn't exist or isn't loaded."
    let culprit = chain
        .split('\'')
        .skip(1)
        .step_by(2)
        .find_map(|name| sources.iter().find(|s| s.name == name));
    match culprit {
        Some(source) => {
            let line = source.text.find("extends").map(|at| line_at(&source.text, at));
            problems.push(&source.path, line.or(Some(1)), chain);
        }
        None => problems.push(tenant_dir, None, chain),
    }
    None
}

/// The three kinds of template file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Subject,
    Html,
    Text,
}

impl Kind {
    /// The file name of this kind for a locale: `body.ja.html`, `subject.txt`.
    fn file_name(self, locale: &LocaleKey) -> String {
        let (stem, extension) = match self {
            Kind::Subject => ("subject", "txt"),
            Kind::Html => ("body", "html"),
            Kind::Text => ("body", "txt"),
        };
        match locale {
            Some(locale) => format!("{stem}.{locale}.{extension}"),
            None => format!("{stem}.{extension}"),
        }
    }
}

const EVENT_DIR_HOLDS: &str = "an event-type directory holds subject.<locale>.txt, \
     body.<locale>.html, body.<locale>.txt (optional), event.toml (optional), schema.json \
     (optional) and samples/";

/// What a template file in an event-type directory is, from its name.
fn classify(file_name: &str) -> Result<(Kind, LocaleKey), String> {
    let unexpected = || format!("unexpected file: {EVENT_DIR_HOLDS}");
    let (stem, rest) = file_name.split_once('.').ok_or_else(unexpected)?;
    let (locale, extension) = match rest.rsplit_once('.') {
        Some((locale, extension)) => (Some(locale), extension),
        None => (None, rest),
    };
    let kind = match (stem, extension) {
        ("subject", "txt") => Kind::Subject,
        ("body", "html") => Kind::Html,
        ("body", "txt") => Kind::Text,
        _ => return Err(unexpected()),
    };
    let locale = match locale {
        None => None,
        Some(raw) => {
            let locale = Locale::parse(raw)
                .map_err(|e| format!("unexpected file: {raw:?} is not a locale: {e}"))?;
            if locale.as_str() != raw {
                return Err(format!(
                    "write the locale as {locale}: {}",
                    kind.file_name(&Some(locale.clone()))
                ));
            }
            Some(locale)
        }
    };
    Ok((kind, locale))
}

/// Reads one event-type directory. `settings` are the tenant's, when its `tenant.toml` is valid;
/// the checks that need them are skipped otherwise.
fn load_event(
    root: &Path,
    dir: &Path,
    tenant: &TenantId,
    event_type: &EventType,
    settings: Option<&TenantSettings>,
    sources: &mut Vec<Source>,
    problems: &mut Problems,
) -> EventTemplates {
    let rel_dir = format!("{tenant}/{event_type}");
    let mut files: BTreeMap<(LocaleKey, Kind), TemplateFile> = BTreeMap::new();
    let mut event_settings = EventSettings::default();
    let mut schema: Option<(VariableSchema, String)> = None;
    let mut sample_files: Vec<Entry> = Vec::new();
    let mut has_samples_dir = false;
    for entry in read_dir_sorted(dir, problems) {
        if entry.is_dir {
            if entry.name == SAMPLES_DIR {
                has_samples_dir = true;
                sample_files = read_dir_sorted(&entry.path, problems);
            } else if !entry.name.starts_with('.') {
                problems.push(
                    &entry.path,
                    None,
                    format!("unexpected directory: {EVENT_DIR_HOLDS}"),
                );
            }
            continue;
        }
        if is_ignored_file(&entry.name) {
            continue;
        }
        if entry.name == EVENT_FILE {
            if let Some(settings) = load_event_settings(&entry.path, problems) {
                event_settings = settings;
            }
            continue;
        }
        if entry.name == SCHEMA_FILE {
            schema = load_schema(&entry.path, &format!("{rel_dir}/{SCHEMA_FILE}"), problems);
            continue;
        }
        let (kind, locale) = match classify(&entry.name) {
            Ok(classified) => classified,
            Err(message) => {
                problems.push(&entry.path, Some(1), message);
                continue;
            }
        };
        let Some(text) = read_text(&entry.path, problems) else { continue };
        let path = format!("{rel_dir}/{}", entry.name);
        // HTML bodies MUST be registered under a name ending in `.html`, which is what turns on
        // autoescaping (see `engine`); nothing else may end so.
        let name = match kind {
            Kind::Html if !path.ends_with(".html") => format!("{path}.html"),
            _ => path.clone(),
        };
        sources.push(Source { name: name.clone(), path: entry.path, rel: path.clone(), text });
        files.insert((locale, kind), TemplateFile { name, path });
    }

    let mut variants = BTreeMap::new();
    let mut texts = BTreeMap::new();
    // Locales with a subject or an HTML body but not both: already reported.
    let mut incomplete = BTreeSet::new();
    let locales: BTreeSet<LocaleKey> = files.keys().map(|(locale, _)| locale.clone()).collect();
    for locale in &locales {
        let subject = files.get(&(locale.clone(), Kind::Subject));
        let html = files.get(&(locale.clone(), Kind::Html));
        match (subject, html) {
            (Some(subject), Some(html)) => {
                variants.insert(
                    locale.clone(),
                    Variant { subject: subject.clone(), html: html.clone() },
                );
            }
            (Some(_), None) => problems.push(
                &dir.join(Kind::Html.file_name(locale)),
                None,
                format!(
                    "missing: {} needs an HTML body beside it",
                    Kind::Subject.file_name(locale)
                ),
            ),
            (None, Some(_)) => problems.push(
                &dir.join(Kind::Subject.file_name(locale)),
                None,
                format!("missing: {} needs a subject beside it", Kind::Html.file_name(locale)),
            ),
            (None, None) => {}
        }
        if subject.is_some() != html.is_some() {
            incomplete.insert(locale.clone());
        }
        if let Some(text) = files.get(&(locale.clone(), Kind::Text)) {
            texts.insert(locale.clone(), text.clone());
        }
    }
    // A text body is used with the HTML body of its own locale or of a more specific one
    // (`body.en.txt` with `body.en-US.html`), never with another language's.
    for locale in texts.keys().flatten() {
        let used = variants
            .keys()
            .chain(incomplete.iter())
            .flatten()
            .any(|v| v.fallbacks().contains(locale));
        if !used {
            problems.push(
                &dir.join(Kind::Text.file_name(&Some(locale.clone()))),
                Some(1),
                format!(
                    "never used: there is no {} and {} for this text body to go with",
                    Kind::Subject.file_name(&Some(locale.clone())),
                    Kind::Html.file_name(&Some(locale.clone())),
                ),
            );
        }
    }

    if files.is_empty() {
        problems.push(
            dir,
            None,
            "no templates: expected subject.<locale>.txt and body.<locale>.html (and optionally \
             body.<locale>.txt)",
        );
    }
    if let Some(settings) = settings.filter(|_| !files.is_empty()) {
        // Every event of this type must be renderable whatever its recipient's locale, so the
        // end of every chain (the tenant's default, then locale-neutral) must have a template.
        // (A locale that has one of the two files was reported above, so it is not repeated.)
        let default = &settings.profile.default_locale;
        let has_default = locale_chain(None, &[], default)
            .iter()
            .any(|l| variants.contains_key(l) || incomplete.contains(l));
        if !has_default {
            problems.push(
                dir,
                None,
                format!(
                    "no template for the tenant's default locale {default}: add {} and {}, or \
                     the locale-neutral subject.txt and body.html",
                    Kind::Subject.file_name(&Some(default.clone())),
                    Kind::Html.file_name(&Some(default.clone())),
                ),
            );
        }
    }

    let samples = load_samples(
        root,
        dir,
        tenant,
        event_type,
        has_samples_dir,
        sample_files,
        schema.as_ref(),
        problems,
    );
    EventTemplates {
        dir: rel_dir,
        variants,
        texts,
        settings: event_settings,
        schema: schema.map(|(schema, _)| schema),
        samples,
    }
}

fn load_event_settings(path: &Path, problems: &mut Problems) -> Option<EventSettings> {
    let text = read_text(path, problems)?;
    let config = match EventConfig::parse(&text) {
        Ok(config) => config,
        Err((line, message)) => {
            problems.push(path, line.or(Some(1)), message);
            return None;
        }
    };
    match config.into_settings() {
        Ok(settings) => Some(settings),
        Err(errors) => {
            for error in errors {
                problems.push(path, error.line(&text).or(Some(1)), error.message);
            }
            None
        }
    }
}

/// `schema.json`: a JSON Schema for the event's `data.variables`. Returns it with its text.
fn load_schema(
    path: &Path,
    rel: &str,
    problems: &mut Problems,
) -> Option<(VariableSchema, String)> {
    let text = read_text(path, problems)?;
    let schema: Value = match serde_json::from_str(&text) {
        Ok(schema) => schema,
        Err(error) => {
            problems.push(path, Some(error.line()), format!("not valid JSON: {error}"));
            return None;
        }
    };
    match jsonschema::validator_for(&schema) {
        Ok(validator) => Some((VariableSchema { path: rel.to_owned(), validator }, text)),
        Err(error) => {
            let pointer = pointer_segments(error.instance_path().as_str());
            let line = line_of_pointer(&text, &pointer).or(Some(1));
            problems.push(path, line, format!("not a valid JSON Schema: {error}"));
            None
        }
    }
}

/// `/a/b~1c` → `["a", "b/c"]`.
fn pointer_segments(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|segment| segment.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// `samples/<name>.json`: each parsed, checked for shape, turned into an event once (which
/// checks the recipient) and checked against the variable schema. Samples with a problem are
/// left out (they are not rendered).
#[allow(clippy::too_many_arguments)]
fn load_samples(
    root: &Path,
    dir: &Path,
    tenant: &TenantId,
    event_type: &EventType,
    has_samples_dir: bool,
    entries: Vec<Entry>,
    schema: Option<&(VariableSchema, String)>,
    problems: &mut Problems,
) -> BTreeMap<String, Sample> {
    let mut samples = BTreeMap::new();
    let mut found = 0;
    for entry in entries {
        if entry.is_dir {
            if !entry.name.starts_with('.') {
                problems.push(
                    &entry.path,
                    None,
                    "unexpected directory: samples/ holds <name>.json files",
                );
            }
            continue;
        }
        if is_ignored_file(&entry.name) {
            continue;
        }
        let name = entry.name.strip_suffix(".json").filter(|name| {
            name.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        });
        let Some(name) = name else {
            problems.push(
                &entry.path,
                Some(1),
                "unexpected file: samples/ holds <name>.json files, names in lowercase letters, \
                 digits, - and _",
            );
            continue;
        };
        found += 1;
        let Some(text) = read_text(&entry.path, problems) else { continue };
        let data = match parse_sample(&text) {
            Ok(data) => data,
            Err((line, message)) => {
                problems.push(&entry.path, line, message);
                continue;
            }
        };
        let mut ok = true;
        if let Err((pointer, reason)) = sample_event(tenant, event_type, name, &data, None) {
            let line = line_of_pointer(&text, &pointer).or(Some(1));
            problems.push(&entry.path, line, reason);
            ok = false;
        }
        if let Some((schema, _)) = schema {
            let variables =
                data.get("variables").cloned().unwrap_or_else(|| Value::Object(Default::default()));
            for error in schema.validator.iter_errors(&variables) {
                let at = error.instance_path().as_str();
                let mut pointer = vec!["variables".to_owned()];
                pointer.extend(pointer_segments(at));
                let line = line_of_pointer(&text, &pointer)
                    .or_else(|| line_of_pointer(&text, &pointer[..1]))
                    .or(Some(1));
                let at =
                    if at.is_empty() { "variables".to_owned() } else { format!("variables{at}") };
                problems.push(
                    &entry.path,
                    line,
                    format!("does not match {SCHEMA_FILE}: {at}: {error}"),
                );
                ok = false;
            }
        }
        if ok {
            let path = relative(root, &entry.path);
            samples.insert(name.to_owned(), Sample { path, text, data });
        }
    }
    if found == 0 {
        let message = if has_samples_dir {
            "no samples: add at least one samples/<name>.json"
        } else {
            "missing: every event type needs samples/<name>.json with the data its templates are \
             checked and previewed with"
        };
        problems.push(&dir.join(SAMPLES_DIR), None, message);
    }
    samples
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn locale(raw: &str) -> LocaleKey {
        Some(Locale::parse(raw).unwrap())
    }

    #[test]
    fn classifies_file_names() {
        assert_eq!(classify("subject.ja.txt").unwrap(), (Kind::Subject, locale("ja")));
        assert_eq!(classify("body.en-US.html").unwrap(), (Kind::Html, locale("en-US")));
        assert_eq!(classify("body.zh-Hant-TW.txt").unwrap(), (Kind::Text, locale("zh-Hant-TW")));
        assert_eq!(classify("subject.txt").unwrap(), (Kind::Subject, None));
        assert_eq!(classify("body.html").unwrap(), (Kind::Html, None));
        assert_eq!(classify("body.txt").unwrap(), (Kind::Text, None));
    }

    #[test]
    fn refuses_other_file_names() {
        for bad in
            ["subject", "subject.html", "body.ja.htm", "body..txt", "body.ja_JP.txt", "x.txt"]
        {
            assert!(classify(bad).unwrap_err().starts_with("unexpected file"), "{bad}");
        }
        assert_eq!(
            classify("body.en-us.txt").unwrap_err(),
            "write the locale as en-US: body.en-US.txt"
        );
    }

    #[test]
    fn splits_the_line_off_parse_errors() {
        assert_eq!(
            split_line("line 3, column 12: expected `}}`"),
            (Some(3), "expected `}}` (column 12)".to_owned())
        );
        assert_eq!(split_line("something else"), (None, "something else".to_owned()));
    }
}
