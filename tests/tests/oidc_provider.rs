//! The test OpenID provider works on its own: discovery, the login form (right and wrong
//! passwords, cancel), code exchange with PKCE, `client_credentials` JWTs with an audience,
//! and the control API (groups, revoked grants, back-channel logout, key rotation).

use warden_tests::oidc::{
    self, browser, jwt_claims, pkce_pair, query_param, LogoutSink, OidcProvider, ProviderOpts,
    ServiceClient, WebClient,
};

const REDIRECT: &str = "http://127.0.0.1:9/callback";

fn warden_client() -> WebClient {
    WebClient::new("warden", "warden-secret", &[REDIRECT])
}

async fn provider_with(client: WebClient) -> OidcProvider {
    OidcProvider::start(ProviderOpts {
        clients: vec![client],
        service_clients: vec![ServiceClient::new(
            "ci",
            "ci-secret",
            "https://api.example.test",
        )],
        ..ProviderOpts::default()
    })
    .await
}

/// Logs `user` in (state `state`, nonce `nonce`): the callback URL and the PKCE verifier.
async fn authorize(
    p: &OidcProvider,
    client: &WebClient,
    user: &str,
    state: &str,
    nonce: &str,
) -> (url::Url, String) {
    let (verifier, challenge) = pkce_pair();
    let url = p.authorize_url(
        client,
        "openid email profile groups",
        state,
        nonce,
        &challenge,
    );
    let callback = oidc::login(&browser(), &url, user, &format!("{user}-password"))
        .await
        .unwrap();
    (callback, verifier)
}

/// Logs `user` in and exchanges the code: the token response.
async fn sign_in(p: &OidcProvider, client: &WebClient, user: &str) -> serde_json::Value {
    let (callback, verifier) = authorize(p, client, user, "st", "nc").await;
    let code = query_param(&callback, "code").unwrap();
    p.exchange_code(client, &code, &verifier).await.unwrap()
}

#[tokio::test]
async fn discovery_names_the_endpoints_warden_uses() {
    let p = provider_with(warden_client()).await;
    let d: serde_json::Value = reqwest::get(p.discovery_url())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["issuer"], p.issuer());
    for endpoint in [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "end_session_endpoint",
    ] {
        assert!(
            d[endpoint].as_str().unwrap().starts_with(&p.issuer()),
            "{endpoint}: {d}"
        );
    }
    assert_eq!(
        d["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(d["backchannel_logout_session_supported"], true);
    let jwks: serde_json::Value = reqwest::get(d["jwks_uri"].as_str().unwrap())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["alg"], "RS256");
}

#[tokio::test]
async fn login_yields_a_code_and_tokens_with_the_users_claims() {
    let client = warden_client();
    let p = provider_with(client.clone()).await;
    let (callback, _) = authorize(&p, &client, "alice", "state-1", "nonce-1").await;
    assert!(callback.as_str().starts_with(REDIRECT), "{callback}");
    assert_eq!(query_param(&callback, "state").as_deref(), Some("state-1"));
    assert_eq!(query_param(&callback, "iss"), Some(p.issuer()));
    let code = query_param(&callback, "code").unwrap();

    // PKCE is enforced: the wrong verifier is refused.
    let (other_verifier, _) = pkce_pair();
    let err = p
        .exchange_code(&client, &code, &other_verifier)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid_grant"), "{err}");

    // A code is good once, so log in again for the real exchange.
    let (callback, verifier) = authorize(&p, &client, "alice", "state-2", "nonce-2").await;
    let code = query_param(&callback, "code").unwrap();
    let tokens = p.exchange_code(&client, &code, &verifier).await.unwrap();
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
    assert_eq!(tokens["expires_in"], 300);
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["sub"], "alice");
    assert_eq!(id["email"], "alice@example.com");
    assert_eq!(id["name"], "Alice Example");
    assert_eq!(id["groups"], serde_json::json!(["eng", "sre"]));
    assert_eq!(id["nonce"], "nonce-2");
    assert_eq!(id["aud"], "warden");
    assert_eq!(id["iss"], p.issuer());

    let info = p
        .userinfo(tokens["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(info["groups"], serde_json::json!(["eng", "sre"]));
}

#[tokio::test]
async fn wrong_passwords_and_unknown_users_get_the_form_again() {
    let client = warden_client();
    let p = provider_with(client.clone()).await;
    let (_, challenge) = pkce_pair();
    let url = p.authorize_url(&client, "openid", "s", "n", &challenge);
    let b = browser();
    let err = oidc::login(&b, &url, "alice", "wrong").await.unwrap_err();
    assert!(
        err.to_string().contains("Invalid login or password"),
        "{err}"
    );
    let err = oidc::login(&b, &url, "mallory", "mallory-password")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    // The same browser can still sign in properly afterwards.
    let callback = oidc::login(&b, &url, "bob", "bob-password").await.unwrap();
    assert!(query_param(&callback, "code").is_some());
}

#[tokio::test]
async fn cancelling_the_login_returns_access_denied() {
    let client = warden_client();
    let p = provider_with(client.clone()).await;
    let (_, challenge) = pkce_pair();
    let url = p.authorize_url(&client, "openid", "s-9", "n", &challenge);
    let callback = oidc::deny(&browser(), &url).await.unwrap();
    assert_eq!(
        query_param(&callback, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_param(&callback, "state").as_deref(), Some("s-9"));
    assert!(query_param(&callback, "code").is_none());
}

#[tokio::test]
async fn client_credentials_yield_a_jwt_for_the_resource() {
    let p = provider_with(warden_client()).await;
    let token = p
        .client_credentials_token("ci", "ci-secret", None)
        .await
        .unwrap();
    let claims = jwt_claims(&token);
    assert_eq!(claims["aud"], "https://api.example.test");
    assert_eq!(claims["iss"], p.issuer());
    assert_eq!(claims["client_id"], "ci");
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());

    // The signature verifies with the provider's published key.
    let jwks: jsonwebtoken::jwk::JwkSet = reqwest::get(p.url("/jwks"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    let jwk = jwks.find(header.kid.as_deref().unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["https://api.example.test"]);
    validation.set_issuer(&[p.issuer()]);
    jsonwebtoken::decode::<serde_json::Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .unwrap();

    assert!(p
        .client_credentials_token("ci", "wrong", None)
        .await
        .is_err());
    assert!(p
        .client_credentials_token("ci", "ci-secret", Some("https://other.example.test"))
        .await
        .is_err());
}

#[tokio::test]
async fn the_control_api_changes_groups_and_revokes_grants() {
    let client = warden_client();
    let p = provider_with(client.clone()).await;
    let tokens = sign_in(&p, &client, "bob").await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        p.userinfo(access).await.unwrap()["groups"],
        serde_json::json!(["eng"])
    );
    p.set_groups("bob", &["eng", "oncall"]).await;
    assert_eq!(
        p.userinfo(access).await.unwrap()["groups"],
        serde_json::json!(["eng", "oncall"])
    );

    // Refresh works, then stops working once the user's grants are revoked.
    let refresh = |rt: String| {
        let (p, client) = (&p, &client);
        async move {
            p.token_request(
                &client.client_id,
                &client.client_secret,
                &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
            )
            .await
        }
    };
    let next = refresh(tokens["refresh_token"].as_str().unwrap().into())
        .await
        .unwrap();
    assert!(p.revoke_user("bob").await > 0);
    let err = refresh(next["refresh_token"].as_str().unwrap().into())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("400"), "{err}");
    assert!(err.to_string().contains("invalid_grant"), "{err}");
}

#[tokio::test]
async fn backchannel_logout_tokens_reach_the_client() {
    let sink = LogoutSink::start().await;
    let mut client = warden_client();
    client.backchannel_logout_uri = Some(sink.url.clone());
    let p = provider_with(client.clone()).await;
    let tokens = sign_in(&p, &client, "carol").await;
    let sid = jwt_claims(tokens["id_token"].as_str().unwrap())["sid"]
        .as_str()
        .unwrap()
        .to_string();

    let delivered = p.backchannel_logout("carol").await;
    assert_eq!(delivered, vec![("warden".to_string(), sid.clone())]);
    let body = sink.next().await;
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let token = &form.iter().find(|(k, _)| k == "logout_token").unwrap().1;
    let claims = jwt_claims(token);
    assert_eq!(claims["sid"], sid.as_str());
    assert_eq!(claims["sub"], "carol");
    assert_eq!(claims["aud"], "warden");
    assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    assert!(claims.get("nonce").is_none());
}

#[tokio::test]
async fn rotated_keys_sign_new_tokens_and_old_keys_stay_published() {
    let p = provider_with(warden_client()).await;
    let before = p
        .client_credentials_token("ci", "ci-secret", None)
        .await
        .unwrap();
    let kids = p.rotate_keys().await;
    assert_eq!(kids.len(), 2);
    let after = p
        .client_credentials_token("ci", "ci-secret", None)
        .await
        .unwrap();
    let kid = |t: &str| jsonwebtoken::decode_header(t).unwrap().kid.unwrap();
    assert_eq!(kid(&after), kids[0]);
    assert_eq!(kid(&before), kids[1]);
    let jwks: serde_json::Value = reqwest::get(p.url("/jwks"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
}
