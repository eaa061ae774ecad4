//! `eid admin register-oidc-client`: an administrator registers an OpenID
//! Connect client for a provider; the secret is printed once.
use crate::support::eid_json as eid;

#[test]
fn eid_admin_registers_an_oidc_client_with_a_secret_and_a_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = eid_server::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("server"),
        ..eid_server::Config::default()
    };
    let server = runtime
        .block_on(eid_server::start(eid_server::ServerOptions::new(config)))
        .unwrap();
    let (url, pin) = (server.base_url(), server.spki_pin.clone());
    let token = server.admin_token.to_string();
    let env = [
        ("EID_SERVER", url.as_str()),
        ("EID_SPKI_PIN", pin.as_str()),
        ("EID_ADMIN_TOKEN", token.as_str()),
    ];
    let (code, sp) = eid(
        &["admin", "register-provider", "--name", "Sparekassen Vest"],
        &env,
    );
    assert_eq!(code, 0, "{sp}");
    let provider = sp["service_provider_id"].as_str().unwrap().to_owned();
    // A P-256 public key on the curve, with extra members.
    let jwk = dir.path().join("client.jwk");
    std::fs::write(
        &jwk,
        r#"{"kty":"EC","crv":"P-256","kid":"k1","use":"sig",
            "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#,
    )
    .unwrap();

    let (code, client) = eid(
        &[
            "admin",
            "register-oidc-client",
            "--provider",
            &provider,
            "--redirect-uri",
            "https://bank.example/cb",
            "--redirect-uri",
            "https://bank.example/cb2",
            "--client-secret",
            "--jwk-file",
            jwk.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(code, 0, "{client}");
    assert!(client["client_id"].as_str().unwrap().starts_with("eidoc_"));
    assert!(
        client["client_secret"]
            .as_str()
            .unwrap()
            .starts_with("eidcs_")
    );
    assert_eq!(client["scopes"], serde_json::json!(["openid"]));
    assert_eq!(client["sector"], "bank.example");
    assert_eq!(
        client["token_endpoint_auth_methods"],
        serde_json::json!(["client_secret_basic", "private_key_jwt"])
    );

    // Without any means of authenticating, the server's code is shown.
    let (code, refused) = eid(
        &[
            "admin",
            "register-oidc-client",
            "--provider",
            &provider,
            "--redirect-uri",
            "https://bank.example/cb",
        ],
        &env,
    );
    assert_ne!(code, 0);
    assert_eq!(refused["error"]["code"], "invalid_parameter", "{refused}");
    drop(server);
}
