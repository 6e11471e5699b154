//! TLS to PostgreSQL, through the function the binary builds its pool with
//! (`PostgresStore::connect`): each test starts a cluster of its own with a server certificate
//! for `localhost` signed by a CA made at test time, and connects with the `sslmode` and
//! `sslrootcert` of the URL. `verify-full` with the right CA and host name connects, and the
//! session is TLS by the server's own account (`pg_stat_ssl`); a wrong CA, a wrong host name and a
//! server without TLS are refused; `prefer`, `require` and `disable` do what
//! `docs/operations.md` ("Security") says. The clusters need the PostgreSQL server binaries
//! (`TAYORI_TEST_PG_BIN`, set by `scripts/test`); without it the tests say so loudly and pass.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tayori_app::ports::StoreError;
use tayori_postgres::testing::Cluster;
use tayori_postgres::{PostgresConfig, PostgresStore};

/// A CA made for this test only, and where its certificate is written.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pem_path: PathBuf,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, format!("tayori test CA {name}"));
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let pem_path = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&pem_path, issuer.pem()).unwrap();
        Self { issuer, pem_path }
    }

    /// A server certificate for `names`, and its key, as PEM.
    fn server_certificate(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        (certificate.pem(), key.serialize_pem())
    }
}

/// A cluster of the test's own with TLS on, presenting `certificate` (PEM certificate, PEM
/// key), or with TLS off for `None`; `None` when `TAYORI_TEST_PG_BIN` is not set.
fn start_cluster(certificate: Option<(String, String)>) -> Option<Cluster> {
    let cluster = Cluster::init("PostgreSQL TLS")?;
    let path = cluster.dir().display().to_string();
    let options = match certificate {
        Some((certificate, key)) => {
            std::fs::write(cluster.dir().join("server.crt"), certificate).unwrap();
            let key_path = cluster.dir().join("server.key");
            std::fs::write(&key_path, key).unwrap();
            // The server refuses a key that others can read.
            std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
            format!(
                "-c ssl=on -c ssl_cert_file={path}/server.crt -c ssl_key_file={path}/server.key"
            )
        }
        None => "-c ssl=off".to_owned(),
    };
    cluster.start(&options);
    Some(cluster)
}

/// The URL of the cluster's `postgres` database at `host`, with `query` (`sslmode=...`).
fn cluster_url(cluster: &Cluster, host: &str, query: &str) -> String {
    format!("{}?{query}", cluster.url(host))
}

/// Connects the way the binary does (`PostgresStore::connect`, which opens one connection
/// before it returns) and reports whether the server sees the session as TLS.
async fn connect(url: &str) -> Result<bool, StoreError> {
    let mut config = PostgresConfig::new(url);
    config.max_connections = 1;
    // A refusal must come from TLS, at once, not from a pool that gave up waiting.
    config.acquire_timeout = Duration::from_secs(20);
    let store = PostgresStore::connect(&config).await?;
    let ssl: bool = sqlx::query_scalar("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
        .fetch_one(store.pool())
        .await
        .expect("pg_stat_ssl answers");
    store.close().await;
    Ok(ssl)
}

/// The error of a connection that must be refused, as text.
async fn refused(url: &str) -> String {
    match connect(url).await {
        Ok(ssl) => panic!("{url} connected (ssl = {ssl}) but must be refused"),
        Err(error) => {
            eprintln!("refused as it must be: {url}\n  {error}");
            error.to_string()
        }
    }
}

/// A cluster with TLS on and a certificate for `localhost` from a test CA; and that CA.
fn tls_cluster() -> Option<(Cluster, Ca)> {
    let pki = tempfile::tempdir().unwrap();
    let ca = Ca::new(pki.path(), "right");
    let cluster = start_cluster(Some(ca.server_certificate(&["localhost"])))?;
    // The CA certificate goes where the cluster's files go, so that it lives as long.
    let pem_path = cluster.dir().join("right-ca.pem");
    std::fs::copy(&ca.pem_path, &pem_path).unwrap();
    Some((cluster, Ca { pem_path, ..ca }))
}

#[tokio::test]
async fn verify_full_with_the_right_ca_and_host_name_connects_over_tls() {
    let Some((cluster, ca)) = tls_cluster() else { return };
    let root = ca.pem_path.display();
    for mode in ["verify-full", "verify-ca"] {
        let url = cluster_url(&cluster, "localhost", &format!("sslmode={mode}&sslrootcert={root}"));
        let ssl = connect(&url).await.unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert!(ssl, "{mode}: the server sees a session without TLS");
    }
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let Some((cluster, _ca)) = tls_cluster() else { return };
    let other = Ca::new(cluster.dir(), "other");
    let root = other.pem_path.display();
    for mode in ["verify-full", "verify-ca"] {
        let error = refused(&cluster_url(
            &cluster,
            "localhost",
            &format!("sslmode={mode}&sslrootcert={root}"),
        ))
        .await;
        assert!(error.contains("UnknownIssuer"), "{mode}: {error}");
    }
    // Without sslrootcert only the public roots are trusted: the test CA is not one of them.
    let error = refused(&cluster_url(&cluster, "localhost", "sslmode=verify-full")).await;
    assert!(error.contains("UnknownIssuer"), "no sslrootcert: {error}");
    // A CA file that is not there is an error, not a fallback to the public roots.
    let missing = cluster.dir().join("missing.pem");
    let error = refused(&cluster_url(
        &cluster,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", missing.display()),
    ))
    .await;
    assert!(
        error.contains(&format!("sslrootcert {}", missing.display()))
            && error.contains("No such file"),
        "missing sslrootcert: {error}"
    );
}

#[tokio::test]
async fn a_host_name_the_certificate_does_not_name_is_refused_under_verify_full() {
    let Some((cluster, ca)) = tls_cluster() else { return };
    let root = ca.pem_path.display();
    // The same server, reached by its address: the certificate names only `localhost`.
    let error = refused(&cluster_url(
        &cluster,
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={root}"),
    ))
    .await;
    assert!(error.contains("certificate not valid for name"), "{error}");
    // verify-ca checks the chain only, not the name (as libpq does).
    let url = cluster_url(&cluster, "127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={root}"));
    assert!(connect(&url).await.unwrap(), "verify-ca by address");

    // A server whose certificate (from the trusted CA) is for another host.
    let Some(elsewhere) = start_cluster(Some(ca.server_certificate(&["db.example.internal"])))
    else {
        return;
    };
    let error = refused(&cluster_url(
        &elsewhere,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={root}"),
    ))
    .await;
    assert!(
        error.contains("certificate not valid for name"),
        "certificate for another host: {error}"
    );
}

#[tokio::test]
async fn prefer_require_and_disable_do_what_the_runbook_says() {
    let Some((cluster, _ca)) = tls_cluster() else { return };
    // `prefer` (the default) and `require` encrypt, but verify nothing: the test CA is unknown.
    assert!(
        connect(&cluster_url(&cluster, "localhost", "sslmode=prefer")).await.unwrap(),
        "prefer"
    );
    assert!(
        connect(&cluster_url(&cluster, "localhost", "sslmode=require")).await.unwrap(),
        "require"
    );
    assert!(connect(&cluster_url(&cluster, "localhost", "")).await.unwrap(), "no sslmode = prefer");
    // Unlike libpq, an sslrootcert does not turn `require` into `verify-ca`.
    let other = Ca::new(cluster.dir(), "other");
    let url = format!("sslmode=require&sslrootcert={}", other.pem_path.display());
    assert!(
        connect(&cluster_url(&cluster, "127.0.0.1", &url)).await.unwrap(),
        "require with another CA"
    );
    // `disable` and `allow` (which sqlx treats as `disable`) stay in plaintext.
    assert!(
        !connect(&cluster_url(&cluster, "localhost", "sslmode=disable")).await.unwrap(),
        "disable"
    );
    assert!(!connect(&cluster_url(&cluster, "localhost", "sslmode=allow")).await.unwrap(), "allow");

    // A server without TLS: `require` and the verify modes refuse; `prefer` stays plaintext.
    let Some(plain) = start_cluster(None) else { return };
    for mode in ["require", "verify-ca", "verify-full"] {
        let error = refused(&cluster_url(&plain, "localhost", &format!("sslmode={mode}"))).await;
        assert!(error.contains("server does not support TLS"), "{mode}: {error}");
    }
    assert!(
        !connect(&cluster_url(&plain, "localhost", "sslmode=prefer")).await.unwrap(),
        "prefer, no TLS"
    );
}
