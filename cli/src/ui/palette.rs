//! Which colours and attributes each kind of text gets, and `NO_COLOR`.

use anstyle::{AnsiColor, Effects, Style};
use huddle_core::client::Tone;

/// The styles of the interactive terminal.
///
/// With colour off (`NO_COLOR`, see <https://no-color.org>) nothing is coloured, and the only
/// attribute left is bold on a mention of the user's own name: the standard covers colour, not
/// emphasis, and a mention that looks like any other text is easy to miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Palette {
    colour: bool,
}

impl Palette {
    /// A palette with colours or without.
    pub fn new(colour: bool) -> Self {
        Self { colour }
    }

    /// Whether the environment asks for no colour: `NO_COLOR` set to anything but empty.
    pub fn colour_from_env() -> bool {
        std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
    }

    /// Text of this tone.
    pub fn tone(&self, tone: Tone) -> Style {
        if !self.colour {
            return Style::new();
        }
        let colour = match tone {
            Tone::Info => return Style::new(),
            Tone::Success => AnsiColor::Green,
            Tone::Error => AnsiColor::Red,
            Tone::Post => AnsiColor::Cyan,
            Tone::Private => AnsiColor::Magenta,
            Tone::Notice => AnsiColor::Yellow,
        };
        Style::new().fg_color(Some(colour.into()))
    }

    /// A mention of the user's own name.
    pub fn mention(&self) -> Style {
        if !self.colour {
            return Style::new().effects(Effects::BOLD);
        }
        Style::new()
            .effects(Effects::BOLD)
            .fg_color(Some(AnsiColor::Black.into()))
            .bg_color(Some(AnsiColor::BrightYellow.into()))
    }

    /// A transfer's status line.
    pub fn status(&self, stalled: bool) -> Style {
        if !self.colour {
            return Style::new();
        }
        let colour = if stalled {
            AnsiColor::Red
        } else {
            AnsiColor::Yellow
        };
        Style::new().fg_color(Some(colour.into()))
    }

    /// The prompt before the line being typed.
    pub fn prompt(&self) -> Style {
        if !self.colour {
            return Style::new();
        }
        Style::new().effects(Effects::BOLD)
    }

    /// Hints of the terminal itself (how to quit, completion candidates).
    pub fn hint(&self) -> Style {
        if !self.colour {
            return Style::new();
        }
        Style::new().effects(Effects::DIMMED)
    }
}
