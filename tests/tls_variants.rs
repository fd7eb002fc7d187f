//! Certificate algorithms, the TLS 1.2 opt-in, JSON logs and systemd notifications.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn every_supported_certificate_algorithm_serves_a_hybrid_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "ca");
    let algorithms: [(&str, &'static rcgen::SignatureAlgorithm); 6] = [
        ("p256", &rcgen::PKCS_ECDSA_P256_SHA256),
        ("p384", &rcgen::PKCS_ECDSA_P384_SHA384),
        ("ed25519", &rcgen::PKCS_ED25519),
        ("mldsa44", &rcgen::PKCS_ML_DSA_44),
        ("mldsa65", &rcgen::PKCS_ML_DSA_65),
        ("mldsa87", &rcgen::PKCS_ML_DSA_87),
    ];
    let backend = echo_backend().await;
    let admin = admin_addr();
    let mut cfg = admin_toml(admin);
    let mut ports = Vec::new();
    for (name, alg) in algorithms {
        let leaf = pki.issue(name, &["localhost"], alg);
        let port = free_port();
        cfg += &listener_toml(name, port, &backend.to_string(), &leaf, "hybrid-required");
        cfg += "\n";
        ports.push((name, port, leaf));
    }
    // RSA: rcgen cannot generate RSA keys with aws-lc-rs, so make one with aws-lc-rs directly.
    let rsa_key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let pkcs8 =
        aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&rsa_key).unwrap();
    let rsa_pem = rcgen::KeyPair::try_from(pkcs8.as_ref()).unwrap();
    let rsa = pki.issue_with_key("rsa", &["localhost"], rsa_pem);
    let rsa_port = free_port();
    cfg += &listener_toml(
        "rsa",
        rsa_port,
        &backend.to_string(),
        &rsa,
        "hybrid-required",
    );
    ports.push(("rsa", rsa_port, rsa));
    let _gw = Gateway::start(dir.path(), "gw", &cfg, admin);

    for (name, port, leaf) in &ports {
        let addr = ([127, 0, 0, 1], *port).into();
        let tls = tls_connect(
            addr,
            client_config(hybrid_first(), pki.roots(), None),
            "localhost",
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let conn = tls.get_ref().1;
        assert_eq!(
            conn.peer_certificates().unwrap()[0],
            leaf.cert_der,
            "{name}"
        );
        assert_eq!(
            conn.negotiated_key_exchange_group().map(|g| g.name()),
            Some(rustls::NamedGroup::X25519MLKEM768),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tls12_only_where_a_listener_opts_in() {
    let Site { dir, pki, leaf, .. } = Site::new("ca", "srv");
    let backend = echo_backend().await;
    let (legacy, modern, admin) = (free_port(), free_port(), admin_addr());
    let cfg = admin_toml(admin)
        + &listener_toml(
            "legacy",
            legacy,
            &backend.to_string(),
            &leaf,
            "hybrid-preferred",
        )
        + "tls12 = true\n\n"
        + &listener_toml(
            "modern",
            modern,
            &backend.to_string(),
            &leaf,
            "hybrid-preferred",
        );
    let _gw = Gateway::start(dir.path(), "gw", &cfg, admin);
    let tls12_client = std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(classical())
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(pki.roots())
            .with_no_client_auth(),
    );
    let (echo, _) = exchange_ok(
        ([127, 0, 0, 1], legacy).into(),
        tls12_client.clone(),
        b"1.2",
    )
    .await;
    assert_eq!(echo, b"1.2");
    assert!(
        exchange(
            ([127, 0, 0, 1], modern).into(),
            tls12_client,
            "localhost",
            b"1.2"
        )
        .await
        .is_err(),
        "TLS 1.2 accepted on a listener that did not opt in"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_and_systemd_notifications() {
    let Site { dir, pki, leaf, .. } = Site::new("ca", "srv");
    let backend = echo_backend().await;
    let socket_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&socket_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (port, admin) = (free_port(), admin_addr());
    let cfg = admin_toml(admin).replace("level = \"info\"", "level = \"info\"\nformat = \"json\"")
        + &listener_toml("web", port, &backend.to_string(), &leaf, "hybrid-required");
    let mut gw = Gateway::start_with_env(
        dir.path(),
        "gw",
        &cfg,
        admin,
        &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())],
    );
    let recv = || {
        let mut buf = [0u8; 512];
        let n = notify.recv(&mut buf).expect("no sd_notify message");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(recv().starts_with("READY=1"));

    let addr = ([127, 0, 0, 1], port).into();
    exchange_ok(addr, client_config(hybrid_first(), pki.roots(), None), b"x").await;
    gw.assert_log("connection closed", Duration::from_secs(5));
    let line = gw
        .log_text()
        .lines()
        .find(|l| l.contains("connection closed"))
        .unwrap()
        .to_owned();
    for field in [
        // The audit line's target is stable across refactors (log filters match it).
        "\"target\":\"pqgate::endpoint\"",
        "\"listener\":\"web\"",
        "\"group\":\"X25519MLKEM768\"",
        "\"suite\":\"TLS13_",
        "\"bytes_up\":1",
        "\"bytes_down\":1",
        "\"outcome\":\"completed\"",
        "\"duration_ms\":",
        "\"peer\":\"127.0.0.1:",
    ] {
        assert!(
            line.starts_with('{') && line.contains(field),
            "{field} missing in {line}"
        );
    }

    gw.signal("HUP");
    let reloading = recv();
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading}"
    );
    assert!(recv().starts_with("READY=1"));
    gw.signal("TERM");
    assert!(recv().starts_with("STOPPING=1"));
    assert_eq!(gw.wait_exit(Duration::from_secs(10)), Some(true));
}
