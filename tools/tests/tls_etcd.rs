//! Guards keel-bench's TLS against Debian's etcd serving https with
//! `--client-cert-auth` (skipped, loudly, without etcd): with the CA and a
//! client certificate every put succeeds and every watch event arrives;
//! without the client certificate,
//! or trusting another CA, keel-bench fails fast and says why.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use support::{bench_within, json_number, start_etcd_tls, EtcdTls};

/// Each keel-bench run's limit (its own --dial-timeout is 10 s).
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// The PEM files of one test: a CA, etcd's certificate (SAN 127.0.0.1)
/// and a client's, all signed by it, and a CA that signed none of them.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn generate(label: &str) -> Pki {
        let dir =
            std::env::temp_dir().join(format!("keel-tools-pki-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ca = certificate_authority("keel-bench test CA");
        let write = |name: &str, text: String| std::fs::write(dir.join(name), text).unwrap();
        write("ca.pem", ca.pem());
        write("other-ca.pem", certificate_authority("another CA").pem());
        for (name, sans, usage) in [
            (
                "server",
                vec!["127.0.0.1".to_string()],
                ExtendedKeyUsagePurpose::ServerAuth,
            ),
            ("client", vec![], ExtendedKeyUsagePurpose::ClientAuth),
        ] {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(sans).unwrap();
            params
                .distinguished_name
                .push(DnType::CommonName, format!("keel-bench test {name}"));
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![usage];
            let certificate = params.signed_by(&key, &ca).unwrap();
            write(&format!("{name}.pem"), certificate.pem());
            write(&format!("{name}-key.pem"), key.serialize_pem());
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn certificate_authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn text(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}

#[test]
fn mutual_tls_against_etcd_puts_and_refusals_say_why() {
    let pki = Pki::generate("etcd");
    let (server, server_key, ca) = (
        pki.path("server.pem"),
        pki.path("server-key.pem"),
        pki.path("ca.pem"),
    );
    let Some(etcd) = start_etcd_tls(
        "tls",
        &EtcdTls {
            cert_file: &server,
            key_file: &server_key,
            trusted_ca_file: &ca,
        },
    ) else {
        return;
    };
    let endpoint = format!("https://127.0.0.1:{}", etcd.port);
    let (client, client_key, other_ca) = (
        pki.path("client.pem"),
        pki.path("client-key.pem"),
        pki.path("other-ca.pem"),
    );
    let run = |tls_flags: &[&str]| {
        let mut args = vec!["--endpoints", &endpoint, "--dial-timeout", "10s", "--json"];
        args.extend_from_slice(tls_flags);
        args.extend_from_slice(&["--clients", "4", "--conns", "2", "put", "--total", "200"]);
        bench_within(&args, RUN_LIMIT)
    };

    let (ok, stdout, stderr) = run(&[
        "--cacert",
        text(&ca),
        "--cert",
        text(&client),
        "--key",
        text(&client_key),
    ]);
    assert!(ok, "keel-bench over mutual TLS failed: {stdout}{stderr}");
    assert_eq!(json_number(&stdout, "{", "successes"), 200.0, "{stdout}");
    assert_eq!(json_number(&stdout, "{", "errors"), 0.0, "{stdout}");

    // Watch streams over TLS too (bare endpoints are TLS given --cacert).
    let bare = format!("127.0.0.1:{}", etcd.port);
    let (ok, stdout, stderr) = bench_within(
        &[
            "--endpoints",
            &bare,
            "--cacert",
            text(&ca),
            "--cert",
            text(&client),
            "--key",
            text(&client_key),
            "--json",
            "watch-latency",
            "--streams",
            "2",
            "--watchers-per-stream",
            "5",
            "--put-total",
            "20",
        ],
        RUN_LIMIT,
    );
    assert!(ok, "watch-latency over mutual TLS failed: {stdout}{stderr}");
    assert_eq!(json_number(&stdout, "\"watch\"", "successes"), 20.0 * 10.0);

    // etcd requires a client certificate: the refusal names the alert and
    // the flags that would have answered it.
    let (ok, stdout, stderr) = run(&["--cacert", text(&ca)]);
    assert!(!ok, "connected without a client certificate: {stdout}");
    eprintln!("without a client certificate: {stderr}");
    assert!(stderr.contains("TLS"), "{stderr}");
    assert!(stderr.contains("give --cert and --key"), "{stderr}");

    // A CA that did not sign etcd's certificate: the handshake fails on it.
    let (ok, stdout, stderr) = run(&[
        "--cacert",
        text(&other_ca),
        "--cert",
        text(&client),
        "--key",
        text(&client_key),
    ]);
    assert!(!ok, "connected trusting the wrong CA: {stdout}");
    eprintln!("trusting another CA: {stderr}");
    assert!(stderr.contains("TLS handshake with"), "{stderr}");
    assert!(stderr.contains("invalid peer certificate"), "{stderr}");
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");
    drop(etcd);
}
