//! Rendered contexts kept for reuse. The same context is usually attached to many tasks, and
//! turning its Markdown into parts costs more than everything else the linker adds to an
//! attach. Entries are found by the text itself (with the format and the room per part),
//! never by the context's name, so a context that changed is always rendered anew.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use super::{CommentBody, Format, Layout, TooLarge, assemble, room, split_parts};

/// Most renderings kept.
const ENTRIES: usize = 16;
/// Longest text kept, in bytes: with [`ENTRIES`], the cache holds well under a megabyte.
const MAX_TEXT: usize = 16 * 1024;

/// The last few renderings, most recently used first.
#[derive(Debug, Default)]
pub struct RenderCache {
    entries: Mutex<VecDeque<Entry>>,
}

#[derive(Debug)]
struct Entry {
    format: Format,
    room: usize,
    text: Box<str>,
    parts: Arc<[String]>,
}

impl Entry {
    fn is(&self, text: &str, format: Format, room: usize) -> bool {
        self.format == format && self.room == room && *self.text == *text
    }
}

impl RenderCache {
    /// Renders like [`super::render`], reusing the parts of an earlier rendering of the same
    /// text; the header, footer and marker are laid out anew each time.
    pub fn render(
        &self,
        text: &str,
        format: Format,
        layout: &Layout,
    ) -> Result<Vec<CommentBody>, TooLarge> {
        if text.len() > MAX_TEXT {
            return super::render(text, format, layout);
        }
        let room = room(format, layout);
        let parts = match self.find(text, format, room) {
            Some(parts) => parts,
            None => self.keep(text, format, room, split_parts(text, format, room)),
        };
        assemble(&parts, format, layout)
    }

    fn find(&self, text: &str, format: Format, room: usize) -> Option<Arc<[String]>> {
        let mut entries = self.lock();
        let at = entries.iter().position(|e| e.is(text, format, room))?;
        if at > 0 {
            let entry = entries.remove(at)?;
            entries.push_front(entry);
        }
        entries.front().map(|e| Arc::clone(&e.parts))
    }

    fn keep(&self, text: &str, format: Format, room: usize, parts: Vec<String>) -> Arc<[String]> {
        let parts: Arc<[String]> = parts.into();
        let mut entries = self.lock();
        // Another attach may have rendered the same text meanwhile.
        if !entries.iter().any(|e| e.is(text, format, room)) {
            entries.push_front(Entry {
                format,
                room,
                text: text.into(),
                parts: Arc::clone(&parts),
            });
            entries.truncate(ENTRIES);
        }
        parts
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asana::Marker;

    fn layout(marker: Marker) -> Layout {
        Layout {
            max_chars: 400,
            max_parts: 10,
            header: Some("Context design_notes (REST context server)".to_owned()),
            footer: true,
            marker: Some(marker),
        }
    }

    fn kept(cache: &RenderCache) -> usize {
        cache.lock().len()
    }

    #[test]
    fn a_kept_rendering_is_laid_out_with_each_attachs_own_marker() {
        let cache = RenderCache::default();
        let text = "# Notes\n\nA paragraph long enough to need several parts. ".repeat(12);
        let text = text.as_str();
        for format in [Format::Markdown, Format::Plain, Format::Code] {
            for _ in 0..3 {
                let layout = layout(Marker::random());
                let parts = cache.render(text, format, &layout).expect("fits").len();
                assert!(parts > 1, "{format:?} made {parts} part");
                assert_eq!(
                    cache.render(text, format, &layout).expect("fits"),
                    crate::render::render(text, format, &layout).expect("fits"),
                );
            }
        }
        assert_eq!(kept(&cache), 3, "one rendering per format");
    }

    #[test]
    fn a_changed_text_is_rendered_anew() {
        let cache = RenderCache::default();
        let layout = layout(Marker::for_key("k"));

        let first = cache
            .render("first", Format::Markdown, &layout)
            .expect("fits");
        let second = cache
            .render("second", Format::Markdown, &layout)
            .expect("fits");

        assert_ne!(first, second);
        assert_eq!(
            second,
            crate::render::render("second", Format::Markdown, &layout).expect("fits")
        );
    }

    #[test]
    fn a_context_too_large_still_fails_when_its_parts_are_kept() {
        let cache = RenderCache::default();
        let mut layout = layout(Marker::for_key("k"));
        layout.max_parts = 9;
        let text = "word ".repeat(400);
        let parts = cache
            .render(&text, Format::Plain, &layout)
            .expect("fits in 9")
            .len();
        assert!(parts > 5, "{parts} parts");

        // Up to 9 parts, numbers and markers are as wide as up to 5: the same room, so the
        // kept parts are found again.
        layout.max_parts = 5;
        let refused = cache.render(&text, Format::Plain, &layout);

        assert!(refused.is_err(), "{refused:?}");
        assert_eq!(kept(&cache), 1);
    }

    #[test]
    fn the_cache_is_bounded_in_entries_and_text_size() {
        let cache = RenderCache::default();
        let layout = layout(Marker::for_key("k"));
        for i in 0..ENTRIES + 5 {
            cache
                .render(&format!("text {i}"), Format::Markdown, &layout)
                .expect("fits");
        }
        assert_eq!(kept(&cache), ENTRIES);

        let cache = RenderCache::default();
        let long = "a".repeat(MAX_TEXT + 1);
        let mut wide = layout.clone();
        wide.max_parts = 1000;
        cache.render(&long, Format::Plain, &wide).expect("fits");
        assert_eq!(kept(&cache), 0);
    }
}
