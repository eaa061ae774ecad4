//! Property tests of the canonical encoding (docs/reliability.md, "Property
//! tests"): every signed message survives a JSON round trip with the same
//! signing bytes, and changing any single field changes the signing bytes, so a
//! signature over the original never verifies for the changed message.

use eid_protocol::crypto::SoftwareSigningKey;
use eid_protocol::{
    AuthenticatorId, CallContext, Decision, IdentityId, Outcome, ReceiptBody, RequestEnvelopeBody,
    RequestId, RequestKind, ServiceProviderId, Signal,
};
use proptest::prelude::*;

fn kind() -> impl Strategy<Value = RequestKind> {
    prop_oneof![
        Just(RequestKind::Login),
        Just(RequestKind::Signature),
        Just(RequestKind::SelfService),
        Just(RequestKind::NewDevice),
        Just(RequestKind::CodeDevice),
    ]
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Approve),
        Just(Outcome::Deny),
        Just(Outcome::ReportFraud)
    ]
}

/// Short strings over a small alphabet, so two draws often share prefixes:
/// that is where a length-prefix mistake would show.
fn text() -> impl Strategy<Value = String> {
    "[ab\u{e6}\n ]{0,6}"
}

fn signal() -> impl Strategy<Value = Signal> {
    prop_oneof![Just(Signal::Unknown), Just(Signal::Off), Just(Signal::On)]
}

/// A version-1 message (no context) or a version-2 one with any context.
fn call_context() -> impl Strategy<Value = Option<CallContext>> {
    proptest::option::of((signal(), signal(), signal(), any::<bool>()).prop_map(
        |(call, screen_shared, remote_control, confirmed_self_started)| CallContext {
            call,
            screen_shared,
            remote_control,
            confirmed_self_started,
        },
    ))
}

fn decision() -> impl Strategy<Value = Decision> {
    (decision_v1(), call_context()).prop_map(|(mut d, c)| {
        d.call_context = c;
        d
    })
}

fn decision_v1() -> impl Strategy<Value = Decision> {
    (
        (
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            outcome(),
            kind(),
            any::<[u8; 32]>(),
        ),
        (
            any::<[u8; 16]>(),
            text(),
            any::<u64>(),
            any::<[u8; 32]>(),
            proptest::option::of(text()),
            any::<u64>(),
        ),
    )
        .prop_map(
            |((r, i, a, o, k, h), (s, name, exp, nonce, code, counter))| Decision {
                request_id: RequestId(r),
                identity_id: IdentityId(i),
                authenticator_id: AuthenticatorId(a),
                outcome: o,
                kind: k,
                reference_text_sha256: h,
                service_provider_id: ServiceProviderId(s),
                service_provider_name: name,
                expires_at_ms: exp,
                server_nonce: nonce,
                binding_code: code,
                counter,
                call_context: None,
            },
        )
}

fn envelope() -> impl Strategy<Value = RequestEnvelopeBody> {
    (
        (
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            kind(),
            any::<[u8; 16]>(),
        ),
        (
            text(),
            text(),
            any::<u64>(),
            any::<u64>(),
            any::<[u8; 32]>(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |((r, i, k, s), (name, body, created, expires, nonce, binding))| RequestEnvelopeBody {
                request_id: RequestId(r),
                identity_id: IdentityId(i),
                kind: k,
                service_provider_id: ServiceProviderId(s),
                service_provider_name: name,
                reference_text: body,
                created_at_ms: created,
                expires_at_ms: expires,
                server_nonce: nonce,
                binding_required: binding,
            },
        )
}

fn receipt() -> impl Strategy<Value = ReceiptBody> {
    (receipt_v1(), call_context()).prop_map(|(mut r, c)| {
        r.call_context = c;
        r
    })
}

fn receipt_v1() -> impl Strategy<Value = ReceiptBody> {
    (
        (
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            outcome(),
            kind(),
        ),
        (
            any::<[u8; 32]>(),
            any::<[u8; 16]>(),
            any::<u64>(),
            any::<[u8; 32]>(),
            any::<u64>(),
        ),
    )
        .prop_map(|((r, i, a, o, k), (h, s, at, d, c))| ReceiptBody {
            request_id: RequestId(r),
            identity_id: IdentityId(i),
            authenticator_id: AuthenticatorId(a),
            outcome: o,
            kind: k,
            reference_text_sha256: h,
            service_provider_id: ServiceProviderId(s),
            decided_at_ms: at,
            decision_sha256: d,
            counter: c,
            call_context: None,
        })
}

/// `a` with field number `field` taken from `b` (fields in declaration order).
fn splice_decision(a: &Decision, b: &Decision, field: usize) -> Decision {
    let mut c = a.clone();
    match field {
        0 => c.request_id = b.request_id,
        1 => c.identity_id = b.identity_id,
        2 => c.authenticator_id = b.authenticator_id,
        3 => c.outcome = b.outcome,
        4 => c.kind = b.kind,
        5 => c.reference_text_sha256 = b.reference_text_sha256,
        6 => c.service_provider_id = b.service_provider_id,
        7 => c.service_provider_name = b.service_provider_name.clone(),
        8 => c.expires_at_ms = b.expires_at_ms,
        9 => c.server_nonce = b.server_nonce,
        10 => c.binding_code = b.binding_code.clone(),
        11 => c.counter = b.counter,
        _ => c.call_context = b.call_context,
    }
    c
}

fn splice_envelope(
    a: &RequestEnvelopeBody,
    b: &RequestEnvelopeBody,
    field: usize,
) -> RequestEnvelopeBody {
    let mut c = a.clone();
    match field {
        0 => c.request_id = b.request_id,
        1 => c.identity_id = b.identity_id,
        2 => c.kind = b.kind,
        3 => c.service_provider_id = b.service_provider_id,
        4 => c.service_provider_name = b.service_provider_name.clone(),
        5 => c.reference_text = b.reference_text.clone(),
        6 => c.created_at_ms = b.created_at_ms,
        7 => c.expires_at_ms = b.expires_at_ms,
        8 => c.server_nonce = b.server_nonce,
        _ => c.binding_required = b.binding_required,
    }
    c
}

fn splice_receipt(a: &ReceiptBody, b: &ReceiptBody, field: usize) -> ReceiptBody {
    let mut c = a.clone();
    match field {
        0 => c.request_id = b.request_id,
        1 => c.identity_id = b.identity_id,
        2 => c.authenticator_id = b.authenticator_id,
        3 => c.outcome = b.outcome,
        4 => c.kind = b.kind,
        5 => c.reference_text_sha256 = b.reference_text_sha256,
        6 => c.service_provider_id = b.service_provider_id,
        7 => c.decided_at_ms = b.decided_at_ms,
        8 => c.decision_sha256 = b.decision_sha256,
        9 => c.counter = b.counter,
        _ => c.call_context = b.call_context,
    }
    c
}

fn key() -> &'static SoftwareSigningKey {
    static KEY: std::sync::OnceLock<SoftwareSigningKey> = std::sync::OnceLock::new();
    KEY.get_or_init(SoftwareSigningKey::generate)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decision_round_trips_and_every_field_is_signed(
        a in decision(), b in decision(), field in 0usize..13,
    ) {
        let json = serde_json::to_string(&a).unwrap();
        let back: Decision = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &a);
        prop_assert_eq!(back.signing_bytes(), a.signing_bytes());

        let c = splice_decision(&a, &b, field);
        if c != a {
            prop_assert_ne!(c.signing_bytes(), a.signing_bytes());
            let signature = key().sign(&a.signing_bytes());
            prop_assert!(key().public_key().verify(&c.signing_bytes(), &signature).is_err());
        }
    }

    #[test]
    fn envelope_round_trips_and_every_field_is_signed(
        a in envelope(), b in envelope(), field in 0usize..10,
    ) {
        let json = serde_json::to_string(&a).unwrap();
        let back: RequestEnvelopeBody = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &a);
        prop_assert_eq!(back.signing_bytes(), a.signing_bytes());

        let c = splice_envelope(&a, &b, field);
        if c != a {
            prop_assert_ne!(c.signing_bytes(), a.signing_bytes());
            let signature = key().sign(&a.signing_bytes());
            prop_assert!(key().public_key().verify(&c.signing_bytes(), &signature).is_err());
        }
    }

    #[test]
    fn receipt_round_trips_and_every_field_is_signed(
        a in receipt(), b in receipt(), field in 0usize..11,
    ) {
        let json = serde_json::to_string(&a).unwrap();
        let back: ReceiptBody = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &a);
        prop_assert_eq!(back.signing_bytes(), a.signing_bytes());

        let c = splice_receipt(&a, &b, field);
        if c != a {
            prop_assert_ne!(c.signing_bytes(), a.signing_bytes());
            let signature = key().sign(&a.signing_bytes());
            prop_assert!(key().public_key().verify(&c.signing_bytes(), &signature).is_err());
        }
    }

    /// Different message types never share signing bytes (domain separation),
    /// so a signature over one can't be replayed as another.
    #[test]
    fn message_types_never_collide(d in decision(), e in envelope(), r in receipt()) {
        let (d, e, r) = (d.signing_bytes(), e.signing_bytes(), r.signing_bytes());
        prop_assert_ne!(&d, &e);
        prop_assert_ne!(&d, &r);
        prop_assert_ne!(&e, &r);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Two adjacent strings are length-prefixed: moving characters from one to
    /// the other ("ab"+"c" vs "a"+"bc") changes the bytes. (Single-field
    /// changes above can't catch a missing prefix; this can.)
    #[test]
    fn adjacent_strings_cannot_trade_characters(
        base in envelope(),
        n1 in "[ab]{0,3}", t1 in "[ab]{0,3}", n2 in "[ab]{0,3}", t2 in "[ab]{0,3}",
        c1 in proptest::option::of("[ab]{0,2}"), c2 in proptest::option::of("[ab]{0,2}"),
        d in decision(),
    ) {
        let mut a = base.clone();
        let mut b = base;
        (a.service_provider_name, a.reference_text) = (n1.clone(), t1.clone());
        (b.service_provider_name, b.reference_text) = (n2.clone(), t2.clone());
        if (n1, t1) != (n2, t2) {
            prop_assert_ne!(a.signing_bytes(), b.signing_bytes());
        }
        // The decision's name, then its optional binding code, then a counter.
        let mut x = d.clone();
        let mut y = d;
        x.binding_code = c1.clone();
        y.binding_code = c2.clone();
        if c1 != c2 {
            prop_assert_ne!(x.signing_bytes(), y.signing_bytes());
        }
    }
}
