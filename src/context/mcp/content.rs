//! MCP contents as comment text: text joined in order, binary named in one short line
//! instead of being dumped as base64.

use rmcp::model::{ContentBlock, PromptMessage, ResourceContents};

/// The text of a resource read: text parts joined in order, binary parts named.
pub fn resource_text(contents: &[ResourceContents]) -> String {
    contents
        .iter()
        .map(|content| match content {
            ResourceContents::TextResourceContents { text, .. } => text.clone(),
            ResourceContents::BlobResourceContents {
                uri,
                mime_type,
                blob,
                ..
            } => binary_line(uri, mime_type.as_deref(), blob),
            _ => "[content of a kind this linker does not know]".to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The MIME type of the first text part, if the server gave one.
pub fn mime_type(contents: &[ResourceContents]) -> Option<String> {
    contents.iter().find_map(|content| match content {
        ResourceContents::TextResourceContents { mime_type, .. } => mime_type.clone(),
        _ => None,
    })
}

/// The text of a rendered prompt: each message's content in order, binary parts named.
pub fn prompt_text(messages: &[PromptMessage]) -> String {
    messages
        .iter()
        .map(|message| match &message.content {
            ContentBlock::Text(text) => text.text.clone(),
            ContentBlock::Image(image) => binary_line("image", Some(&image.mime_type), &image.data),
            ContentBlock::Audio(audio) => binary_line("audio", Some(&audio.mime_type), &audio.data),
            ContentBlock::Resource(embedded) => {
                resource_text(std::slice::from_ref(&embedded.resource))
            }
            ContentBlock::ResourceLink(link) => format!("[resource: {}]", link.uri),
            _ => "[content of a kind this linker does not know]".to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// `[binary content: URI (MIME, N bytes)]`, N decoded from the base64 length.
fn binary_line(what: &str, mime_type: Option<&str>, base64: &str) -> String {
    let trimmed = base64.trim_end_matches('=');
    let bytes = trimmed.len() * 3 / 4;
    format!(
        "[binary content: {what} ({}, {bytes} bytes)]",
        mime_type.unwrap_or("unknown type")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_joined_in_order_and_blobs_are_named_not_dumped() {
        let contents = [
            ResourceContents::text("first", "ctx://a"),
            ResourceContents::BlobResourceContents {
                uri: "ctx://logo.png".into(),
                mime_type: Some("image/png".into()),
                blob: "iVBORw0KGgo=".into(),
                meta: None,
            },
            ResourceContents::text("second", "ctx://b"),
        ];

        let text = resource_text(&contents);

        assert_eq!(
            text,
            "first\n[binary content: ctx://logo.png (image/png, 8 bytes)]\nsecond"
        );
    }
}
