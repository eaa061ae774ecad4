//! The QR code of a channel-binding code on the login page, as SVG.
//!
//! The payload is the versioned one the app scans
//! (`eid_protocol::binding::QR_PREFIX` and the code); error correction M
//! survives a phone camera at an angle, and the code is short enough that the
//! symbol stays small (version 2, 25 × 25 modules).

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// The SVG of `payload`, or `None` if it does not fit in a QR code (a
/// binding payload always does).
pub(crate) fn svg(payload: &str) -> Option<String> {
    let code = QrCode::with_error_correction_level(payload.as_bytes(), EcLevel::M).ok()?;
    Some(
        code.render::<svg::Color<'_>>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::svg;

    #[test]
    fn a_binding_payload_becomes_an_svg_with_a_quiet_zone() {
        let image = svg("eid-bind:v1:ABCDEFGH").expect("fits");
        assert!(image.contains("<svg"));
        assert!(image.contains("viewBox"));
        assert!(image.len() < 20_000, "small enough to send every 10 s");
    }

    #[test]
    fn different_codes_give_different_images() {
        assert_ne!(svg("eid-bind:v1:ABCDEFGH"), svg("eid-bind:v1:ABCDEFGI"));
    }
}
