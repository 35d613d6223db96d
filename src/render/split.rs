//! Splitting rendered blocks into parts within the character limit, at block boundaries
//! where possible; a block too long for one part is cut between lines, then words, then
//! characters, never inside a tag or an entity, and a code block is closed and reopened.

use super::{Block, escape, text_content};

/// Separator between blocks: a blank line (Asana has no paragraph tag).
const SEPARATOR: &str = "\n\n";

/// Packs blocks into parts whose html is at most `room` characters each.
pub fn html_parts(blocks: Vec<Block>, room: usize) -> Vec<String> {
    // Most contexts fit in one comment: bytes bound characters, so when the bytes fit, the
    // blocks are joined as they are, without counting or copying each one.
    let bytes = blocks.iter().map(|b| b.html.len()).sum::<usize>()
        + SEPARATOR.len() * blocks.len().saturating_sub(1);
    if bytes <= room {
        let mut blocks = blocks.into_iter();
        return blocks
            .next()
            .map(|first| {
                let mut joined = first.html;
                joined.reserve(bytes - joined.len());
                for block in blocks {
                    joined.push_str(SEPARATOR);
                    joined.push_str(&block.html);
                }
                joined
            })
            .into_iter()
            .collect();
    }
    let mut units = Vec::new();
    for block in blocks {
        if block.html.chars().count() <= room {
            units.push(block.html);
        } else if let Some(code) = &block.code {
            let inner = room.saturating_sub("<code></code>".len()).max(1);
            units.extend(
                chunks(code, inner, escaped_len)
                    .iter()
                    .map(|chunk| format!("<code>{}</code>", escape(chunk))),
            );
        } else {
            // Inline formatting cannot be cut safely; an oversized block keeps its text.
            units.extend(
                chunks(&text_content(&block.html), room, escaped_len)
                    .iter()
                    .map(|c| escape(c)),
            );
        }
    }
    pack(units, room)
}

/// Cuts plain text into parts of at most `room` characters, between lines where possible.
pub fn text_parts(text: &str, room: usize) -> Vec<String> {
    chunks(text, room, |_| 1)
}

/// The characters `c` takes once escaped (none if XML cannot carry it).
pub(super) fn escaped_len(c: char) -> usize {
    match c {
        '&' => 5,
        '<' | '>' => 4,
        '"' => 6,
        c => usize::from(super::is_xml_char(c)),
    }
}

/// Greedy packing of units, joined by the separator, into parts of at most `room`.
fn pack(units: Vec<String>, room: usize) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut current_len = 0;
    for unit in units {
        let len = unit.chars().count();
        let joined = if current.is_empty() {
            len
        } else {
            current_len + SEPARATOR.len() + len
        };
        if joined <= room {
            if !current.is_empty() {
                current.push_str(SEPARATOR);
            }
            current.push_str(&unit);
            current_len = joined;
        } else {
            if !current.is_empty() {
                parts.push(std::mem::take(&mut current));
            }
            current = unit;
            current_len = len;
        }
    }
    if !current.is_empty() {
        parts.push(current);
    }
    parts
}

/// Cuts `text` into pieces whose cost is at most `room`: between lines first, then after
/// spaces, then between characters. The pieces concatenated are `text`.
fn chunks(text: &str, room: usize, cost: fn(char) -> usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut current_cost = 0;
    let mut add = |piece: &str, out: &mut Vec<String>| {
        let piece_cost: usize = piece.chars().map(cost).sum();
        if current_cost + piece_cost <= room {
            current.push_str(piece);
            current_cost += piece_cost;
            return true;
        }
        if !current.is_empty() {
            out.push(std::mem::take(&mut current));
            current_cost = 0;
        }
        if piece_cost <= room {
            current.push_str(piece);
            current_cost = piece_cost;
            return true;
        }
        false
    };
    for line in text.split_inclusive('\n') {
        if add(line, &mut out) {
            continue;
        }
        for word in line.split_inclusive(' ') {
            if add(word, &mut out) {
                continue;
            }
            for c in word.chars() {
                let piece = c.to_string();
                // A single character costlier than the room still has to go somewhere.
                if !add(&piece, &mut out) {
                    out.push(piece);
                }
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}
