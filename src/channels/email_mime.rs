//! The email kit's fast MIME pass: the part tree mail-parser's `MessageParser::parse` builds, for
//! the shapes customer mail has, at a fraction of its cost.
//!
//! mail-parser walks every body byte by byte through a peekable iterator to find the next
//! boundary; this pass finds boundaries with a vectorised substring search (`memchr::memmem`)
//! and does everything else with mail-parser's own public pieces: its header parser (with the
//! kit's header selection, so headers come out exactly as they would), its quoted-printable and
//! base64 part decoders, its charset decoders, and its rules for which parts are text bodies,
//! HTML bodies and attachments (copied from `MessageParser::parse_` of mail-parser 0.11.9).
//!
//! Only the well-formed common shapes are handled: a single part, or multiparts whose leaves
//! are text or binary parts, every boundary present and every multipart closed. For anything
//! else — an embedded message (`message/rfc822`, `multipart/digest` members), a part mail-parser
//! would recover from (a missing boundary, a bad encoding, an unclosed multipart), a message
//! without a body — [`structure`] returns `None` and the caller runs mail-parser's full parse,
//! so the result is always the part tree mail-parser would give.

use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::parsers::MessageStream;
use mail_parser::{
    ContentType, Encoding, GetHeader, HeaderName, HeaderValue, Message, MessageParser, MessagePart, MessagePartId,
    PartType,
};
use memchr::memmem::Finder;
use std::borrow::Cow;

/// A text part's decoded bytes read in the charset its `Content-Type` names (UTF-8, invalid
/// sequences replaced, when it names none or one unknown), as mail-parser reads them.
pub(super) fn text_in_charset<'x>(bytes: Cow<'x, [u8]>, content_type: Option<&ContentType<'_>>) -> Cow<'x, str> {
    match (bytes, charset_of(content_type)) {
        (Cow::Owned(vec), Some(decode)) => decode(&vec).into(),
        (Cow::Owned(vec), None) => {
            String::from_utf8(vec).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()).into()
        }
        (Cow::Borrowed(bytes), Some(decode)) => decode(bytes).into(),
        // `from_utf8` checks ASCII a word at a time; `from_utf8_lossy` walks every byte.
        (Cow::Borrowed(bytes), None) => match std::str::from_utf8(bytes) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(bytes),
        },
    }
}

/// The decoder of the charset a `Content-Type` names; `None` when the text is read as UTF-8
/// (no charset, UTF-8 itself, or one mail-parser does not know).
pub(super) fn charset_of(content_type: Option<&ContentType<'_>>) -> Option<fn(&[u8]) -> String> {
    content_type.and_then(|ct| ct.attribute("charset")).and_then(|c| charset_decoder(c.as_bytes()))
}

/// mail-parser's classification of a part (its private `MimeType`, without `Message`, which
/// this pass hands to the full parse).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mime {
    MultipartMixed,
    MultipartAlternative,
    MultipartRelated,
    MultipartDigest,
    TextPlain,
    TextHtml,
    TextOther,
    Inline,
    /// The root of the message (mail-parser's `MimeType::Message` for the top level).
    Root,
    Other,
}

/// `(is_multipart, is_inline, is_text, mime)`, or `None` for an embedded message.
fn mime_type(content_type: Option<&ContentType<'_>>, parent: Mime) -> Option<(bool, bool, bool, Mime)> {
    let Some(ct) = content_type else {
        return (parent != Mime::MultipartDigest).then_some((false, true, true, Mime::TextPlain));
    };
    Some(match ct.ctype() {
        "multipart" => (
            true,
            false,
            false,
            match ct.subtype() {
                Some("mixed") => Mime::MultipartMixed,
                Some("alternative") => Mime::MultipartAlternative,
                Some("related") => Mime::MultipartRelated,
                Some("digest") => Mime::MultipartDigest,
                _ => Mime::Other,
            },
        ),
        "text" => match ct.subtype() {
            Some("plain") => (false, true, true, Mime::TextPlain),
            Some("html") => (false, true, true, Mime::TextHtml),
            _ => (false, false, true, Mime::TextOther),
        },
        "image" | "audio" | "video" => (false, true, false, Mime::Inline),
        "message" if matches!(ct.subtype(), Some("rfc822" | "global")) => return None,
        _ => (false, false, false, Mime::Other),
    })
}

/// One multipart being walked (mail-parser's `MessageParserState`).
struct Level {
    mime: Mime,
    /// `--` and the boundary: what ends each of this multipart's parts.
    delimiter: Option<Finder<'static>>,
    boundary: Vec<u8>,
    in_alternative: bool,
    parts: usize,
    html_parts: usize,
    text_parts: usize,
    need_html_body: bool,
    need_text_body: bool,
    part_id: usize,
    sub_part_ids: Vec<MessagePartId>,
}

impl Level {
    fn root() -> Self {
        Level {
            mime: Mime::Root,
            delimiter: None,
            boundary: Vec::new(),
            in_alternative: false,
            parts: 0,
            html_parts: 0,
            text_parts: 0,
            need_html_body: true,
            need_text_body: true,
            part_id: 0,
            sub_part_ids: Vec::new(),
        }
    }
}

/// Where `--boundary` next occurs at or after `from`, as mail-parser's byte scan finds it (it
/// matches the delimiter anywhere, not only at a line start).
fn find(raw: &[u8], from: usize, delimiter: &Finder<'_>) -> Option<usize> {
    delimiter.find(raw.get(from..)?).map(|at| from + at)
}

/// mail-parser's `MessageStream::mime_part` for an unencoded part: the part's bytes (up to the
/// line break before the delimiter, or up to the delimiter when it does not start a line), with
/// the stream left after the delimiter; `None` when the delimiter never comes.
fn plain_part<'x>(
    raw: &'x [u8],
    stream: &mut MessageStream<'x>,
    delimiter: Option<&Finder<'_>>,
) -> Option<(usize, &'x [u8])> {
    let start = stream.offset();
    let Some(delimiter) = delimiter else {
        stream.seek_end();
        return Some((raw.len(), raw.get(start..)?));
    };
    let at = find(raw, start, delimiter)?;
    let before = |n: usize| at.checked_sub(n).filter(|&i| i >= start).and_then(|i| raw.get(i)).copied();
    let end = match before(1) {
        None => start,
        Some(b'\n') if before(2) == Some(b'\r') => at - 2,
        Some(b'\n') => at - 1,
        Some(_) => at,
    };
    stream.skip_bytes(at - start + delimiter.needle().len());
    Some((end, raw.get(start..end)?))
}

/// The part tree of `raw` exactly as `conf.parse(raw)` builds it, or `None` when the message
/// has a shape this pass leaves to the full parse (see the module docs).
pub(super) fn structure<'x>(raw: &'x [u8], conf: &MessageParser) -> Option<Message<'x>> {
    let mut stream = MessageStream::new(raw);
    let mut message = Message::default();
    let mut state = Level::root();
    let mut stack: Vec<Level> = Vec::new();
    let mut headers = Vec::new();

    'outer: loop {
        let offset_header = stream.offset();
        if !stream.parse_headers(conf, &mut headers) {
            // No blank line after the headers (a message without a body), or a multipart whose
            // next part never starts: the full parse's recovery rules apply.
            return None;
        }
        let offset_body = stream.offset();
        state.parts += 1;
        state.sub_part_ids.push(u32::try_from(message.parts.len()).ok()?);

        let content_type = headers.header_value(&HeaderName::ContentType).and_then(HeaderValue::as_content_type);
        let (is_multipart, is_inline, is_text, mime) = mime_type(content_type, state.mime)?;

        if is_multipart {
            // A multipart without a boundary, or whose first delimiter never comes, is text to
            // mail-parser: left to the full parse.
            let boundary = content_type.and_then(|ct| ct.attribute("boundary"))?.as_bytes();
            if boundary.is_empty() {
                return None;
            }
            let mut needle = Vec::with_capacity(boundary.len() + 2);
            needle.extend_from_slice(b"--");
            needle.extend_from_slice(boundary);
            let delimiter = Finder::new(&needle).into_owned();
            let at = find(raw, stream.offset(), &delimiter)?;
            stream.skip_bytes(at + needle.len() - stream.offset());
            let next = Level {
                mime,
                boundary: boundary.to_vec(),
                delimiter: Some(delimiter),
                in_alternative: state.in_alternative || mime == Mime::MultipartAlternative,
                parts: 0,
                html_parts: message.html_body.len(),
                text_parts: message.text_body.len(),
                need_html_body: state.need_html_body,
                need_text_body: state.need_text_body,
                part_id: message.parts.len(),
                sub_part_ids: Vec::new(),
            };
            message.parts.push(MessagePart {
                headers: std::mem::take(&mut headers),
                offset_header: u32::try_from(offset_header).ok()?,
                offset_body: u32::try_from(offset_body).ok()?,
                offset_end: 0,
                is_encoding_problem: false,
                encoding: Encoding::None,
                body: PartType::default(),
            });
            stack.push(std::mem::replace(&mut state, next));
            stream.skip_crlf();
            continue;
        }

        let encoding = match headers.header_value(&HeaderName::ContentTransferEncoding) {
            Some(HeaderValue::Text(e)) if e.eq_ignore_ascii_case("base64") => Encoding::Base64,
            Some(HeaderValue::Text(e)) if e.eq_ignore_ascii_case("quoted-printable") => Encoding::QuotedPrintable,
            _ => Encoding::None,
        };
        let (offset_end, bytes): (usize, Cow<'x, [u8]>) = match encoding {
            Encoding::Base64 => stream.decode_base64_mime(&state.boundary),
            Encoding::QuotedPrintable => stream.decode_quoted_printable_mime(&state.boundary),
            Encoding::None => plain_part(raw, &mut stream, state.delimiter.as_ref()).map(|(e, b)| (e, b.into()))?,
        };
        if offset_end == usize::MAX {
            // An encoding problem: mail-parser recovers the part as raw text.
            return None;
        }

        let is_inline = is_inline
            && headers
                .header_value(&HeaderName::ContentDisposition)
                .is_none_or(|d| !d.as_content_type().is_some_and(|ct| ct.is_attachment()))
            && (state.parts == 1
                || state.mime != Mime::MultipartRelated
                    && (mime == Mime::Inline || content_type.is_none_or(|c| !c.has_attribute("name"))));
        let (add_to_html, add_to_text) = if state.mime == Mime::MultipartAlternative {
            match mime {
                Mime::TextHtml => (true, false),
                Mime::TextPlain => (false, true),
                _ => (false, false),
            }
        } else if is_inline {
            if state.in_alternative && (state.need_text_body || state.need_html_body) {
                match mime {
                    Mime::TextHtml => state.need_text_body = false,
                    Mime::TextPlain => state.need_html_body = false,
                    _ => (),
                }
            }
            (state.need_html_body, state.need_text_body)
        } else {
            (false, false)
        };
        let id = u32::try_from(message.parts.len()).ok()?;
        if add_to_html {
            message.html_body.push(id);
        }
        if add_to_text {
            message.text_body.push(id);
        }
        let body = if is_text {
            let text = text_in_charset(bytes, content_type);
            let is_html = mime == Mime::TextHtml;
            if !add_to_html && is_html || !add_to_text && !is_html {
                message.attachments.push(id);
            }
            if is_html { PartType::Html(text) } else { PartType::Text(text) }
        } else {
            message.attachments.push(id);
            if is_inline { PartType::InlineBinary(bytes) } else { PartType::Binary(bytes) }
        };
        message.parts.push(MessagePart {
            headers: std::mem::take(&mut headers),
            encoding,
            is_encoding_problem: false,
            body,
            offset_header: u32::try_from(offset_header).ok()?,
            offset_body: u32::try_from(offset_body).ok()?,
            offset_end: u32::try_from(offset_end).ok()?,
        });

        if state.delimiter.is_none() {
            // The single part of a message that is not multipart runs to the end.
            if stream.offset() < raw.len() {
                return None;
            }
            break;
        }
        loop {
            if !stream.is_multipart_end() {
                // The next part's headers follow.
                continue 'outer;
            }
            if state.mime == Mime::MultipartAlternative && state.need_html_body && state.need_text_body {
                // An alternative with only HTML (or only text) serves as both.
                if state.text_parts == message.text_body.len() && state.html_parts != message.html_body.len() {
                    let html = message.html_body.get(state.html_parts..)?.to_vec();
                    message.text_body.extend(html);
                }
                if state.html_parts == message.html_body.len() && state.text_parts != message.text_body.len() {
                    let text = message.text_body.get(state.text_parts..)?.to_vec();
                    message.html_body.extend(text);
                }
            }
            let part = message.parts.get_mut(state.part_id)?;
            if state.sub_part_ids.len() != 1 || state.sub_part_ids.first() != Some(&0) {
                part.body = PartType::Multipart(std::mem::take(&mut state.sub_part_ids));
            }
            state = stack.pop()?;
            if state.delimiter.is_none() {
                // The root multipart closed: what follows is its epilogue.
                part.offset_end = u32::try_from(stream.offset()).ok()?;
                break 'outer;
            }
            // The parent's next delimiter (its part `state` just closed ends before it).
            part.offset_end = u32::try_from(stream.seek_next_part_offset(&state.boundary)?).ok()?;
        }
    }
    if !stack.is_empty() || message.parts.is_empty() {
        return None;
    }
    message.raw_message = raw.into();
    if let Some(root) = message.parts.first_mut() {
        root.offset_end = u32::try_from(raw.len()).ok()?;
    }
    Some(message)
}
