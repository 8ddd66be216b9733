//! What a prediction request carries, read into encoded images: a raw image body, or JSON
//! `{"images": [base64, ...], "top_k": k}`; and each image decoded to the model's pixels,
//! refusing what is not an image, what does not decode and a wrong number of channels.

use std::io::Cursor;

use axum::body::Bytes;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use image::{ImageFormat, ImageReader, Limits};
use serde::Deserialize;

use super::error::ApiError;

/// Classes listed per image unless the request says otherwise.
pub const DEFAULT_TOP_K: usize = 3;

/// A parsed prediction request: its encoded images and how many classes to list.
#[derive(Debug)]
pub struct PredictRequest {
    /// Encoded images (PNG, JPEG or BMP bytes).
    pub images: Vec<Bytes>,
    /// Classes to list per image (at least 1).
    pub top_k: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRequest {
    images: Vec<serde_json::Value>,
    #[serde(default)]
    top_k: Option<serde_json::Value>,
}

/// `top_k` as a request gives it (JSON field or `?top_k=` query): a whole number of at
/// least 1.
pub fn parse_top_k(v: Option<&serde_json::Value>) -> Result<usize, ApiError> {
    let bad = |shown: String| {
        ApiError::bad_request(
            "bad_top_k",
            format!("top_k must be a whole number of at least 1, not {shown}"),
        )
    };
    match v {
        None => Ok(DEFAULT_TOP_K),
        Some(serde_json::Value::Number(n)) => match n.as_u64() {
            Some(k) if k >= 1 => Ok(usize::try_from(k).unwrap_or(usize::MAX)),
            _ => Err(bad(n.to_string())),
        },
        Some(other) => Err(bad(other.to_string())),
    }
}

/// The images of a JSON body.
pub fn parse_json(body: &[u8]) -> Result<PredictRequest, ApiError> {
    let req: JsonRequest = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "bad_json",
            format!(
                "the body is not the JSON this route takes ({{\"images\": [base64, ...], \
                 \"top_k\": 3}}): {e}"
            ),
        )
    })?;
    if req.images.is_empty() {
        return Err(ApiError::bad_request(
            "no_images",
            "\"images\" is empty: give at least one base64-encoded image",
        ));
    }
    let top_k = parse_top_k(req.top_k.as_ref())?;
    let images = req
        .images
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let text = v.as_str().ok_or_else(|| {
                ApiError::bad_request(
                    "bad_json",
                    format!("images[{i}] is not a string (a base64-encoded image)"),
                )
            })?;
            STANDARD.decode(text.trim()).map(Bytes::from).map_err(|e| {
                ApiError::bad_request("bad_base64", format!("images[{i}] is not base64: {e}"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PredictRequest { images, top_k })
}

/// The channels an image has, ignoring alpha: 1 (grayscale) or 3 (colour).
fn colour_channels(c: image::ColorType) -> usize {
    if c.has_color() { 3 } else { 1 }
}

fn channel_name(c: usize) -> &'static str {
    if c == 1 { "grayscale" } else { "RGB" }
}

/// Decodes one image to u8 pixels `[C, H, W]` of `shape`, resized (bilinear) as `ember
/// predict` resizes. An image whose colour channels are not the model's (RGB for a
/// grayscale model, or the reverse) is refused rather than converted; alpha is dropped.
pub fn decode_image(bytes: &[u8], shape: [usize; 3]) -> Result<Vec<u8>, ApiError> {
    let [c, h, w] = shape;
    let not_image = |what: String| ApiError::new(StatusCode::BAD_REQUEST, "not_an_image", what);
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| not_image(format!("cannot read the image: {e}")))?;
    match reader.format() {
        Some(ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Bmp) => {}
        Some(other) => {
            return Err(not_image(format!(
                "a {other:?} image: the server reads PNG, JPEG and BMP"
            )));
        }
        None => {
            return Err(not_image(format!(
                "not a PNG, JPEG or BMP image ({} bytes, starting with {})",
                bytes.len(),
                bytes[..bytes.len().min(8)]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )));
        }
    }
    let mut reader = reader;
    let mut limits = Limits::default();
    limits.max_image_width = Some(ember_data::formats::folder::MAX_SIDE);
    limits.max_image_height = Some(ember_data::formats::folder::MAX_SIDE);
    limits.max_alloc = Some(256 << 20);
    reader.limits(limits);
    let undecodable = |e: &dyn std::fmt::Display| {
        ApiError::bad_request("undecodable_image", format!("cannot decode the image: {e}"))
    };
    let decoder = reader.into_decoder().map_err(|e| undecodable(&e))?;
    let has = colour_channels(image::ImageDecoder::color_type(&decoder));
    if has != c {
        return Err(ApiError::bad_request(
            "wrong_channels",
            format!(
                "the image is {} ({has} channel{}), the model takes {} images ({c} channel{})",
                channel_name(has),
                if has == 1 { "" } else { "s" },
                channel_name(c),
                if c == 1 { "" } else { "s" },
            ),
        ));
    }
    ember_data::decode_image("the image", bytes, c, h, w).map_err(|e| undecodable(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_tensor::Rng;

    fn gray_png() -> Vec<u8> {
        let mut out = Vec::new();
        image::ImageEncoder::write_image(
            image::codecs::png::PngEncoder::new(&mut out),
            &[7u8; 28 * 28],
            28,
            28,
            image::ExtendedColorType::L8,
        )
        .unwrap();
        out
    }

    /// Random bytes, and a valid PNG and JSON body with bytes changed, cut or appended:
    /// every one is answered with pixels or an error, never a panic.
    #[test]
    fn mangled_input_is_an_error_not_a_panic() {
        let png = gray_png();
        let json = format!(
            "{{\"images\": [\"{}\"], \"top_k\": 2}}",
            STANDARD.encode(&png)
        );
        let mut rng = Rng::new(3);
        for round in 0..600 {
            let base: &[u8] = if round % 2 == 0 {
                &png
            } else {
                json.as_bytes()
            };
            let mut bytes = match round % 3 {
                0 => (0..rng.below(200)).map(|_| rng.below(256) as u8).collect(),
                _ => base.to_vec(),
            };
            for _ in 0..rng.below(6) {
                if bytes.is_empty() {
                    break;
                }
                let at = rng.below(bytes.len() as u64) as usize;
                match rng.below(3) {
                    0 => bytes[at] = rng.below(256) as u8,
                    1 => bytes.truncate(at),
                    _ => bytes.insert(at, rng.below(256) as u8),
                }
            }
            let _ = decode_image(&bytes, [1, 28, 28]);
            let _ = decode_image(&bytes, [3, 8, 8]);
            let _ = parse_json(&bytes);
        }
        assert_eq!(decode_image(&png, [1, 28, 28]).unwrap(), vec![7u8; 28 * 28]);
        assert_eq!(parse_json(json.as_bytes()).unwrap().top_k, 2);
    }
}
