#include "hub/fanout/terminal_screen.h"

#include <vterm.h>

#include <algorithm>
#include <cstdlib>

namespace rx::hub {
namespace {

int clamp_size(int n) { return std::clamp(n, 1, 1000); }

// A blank printed at home, and the cursor back there: the screen looks as before, and libvterm
// has a last character (of width 1) for REP to repeat.
constexpr std::string_view kPrime = " \x1b[H";

void put_utf8(std::string& out, uint32_t c) {
  if (c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) c = 0xFFFD;
  if (c < 0x80) {
    out += char(c);
  } else if (c < 0x800) {
    out += char(0xC0 | (c >> 6));
    out += char(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += char(0xE0 | (c >> 12));
    out += char(0x80 | ((c >> 6) & 0x3F));
    out += char(0x80 | (c & 0x3F));
  } else {
    out += char(0xF0 | (c >> 18));
    out += char(0x80 | ((c >> 12) & 0x3F));
    out += char(0x80 | ((c >> 6) & 0x3F));
    out += char(0x80 | (c & 0x3F));
  }
}

// ";38;5;N" and the like for one colour; nothing for the default one.
void put_color(std::string& out, const VTermColor& c, bool background) {
  if (background ? VTERM_COLOR_IS_DEFAULT_BG(&c) : VTERM_COLOR_IS_DEFAULT_FG(&c)) return;
  int base = background ? 40 : 30;
  if (VTERM_COLOR_IS_INDEXED(&c)) {
    int i = c.indexed.idx;
    if (i < 8)
      out += ";" + std::to_string(base + i);
    else if (i < 16)
      out += ";" + std::to_string(base + 60 + i - 8);
    else
      out += ";" + std::to_string(base + 8) + ";5;" + std::to_string(i);
  } else {
    out += ";" + std::to_string(base + 8) + ";2;" + std::to_string(c.rgb.red) + ";" + std::to_string(c.rgb.green) +
           ";" + std::to_string(c.rgb.blue);
  }
}

struct Pen {
  bool bold = false, italic = false, blink = false, reverse = false, strike = false;
  int underline = 0;
  VTermColor fg = default_color(VTERM_COLOR_DEFAULT_FG), bg = default_color(VTERM_COLOR_DEFAULT_BG);
  static VTermColor default_color(uint8_t flag) {
    VTermColor c{};
    c.type = flag;
    return c;
  }
};

// The SGR that sets exactly `p`, from a reset pen ("\x1b[0m" is the plain one).
std::string sgr(const Pen& p) {
  std::string s = "\x1b[0";
  if (p.bold) s += ";1";
  if (p.italic) s += ";3";
  if (p.underline) s += ";4";
  if (p.blink) s += ";5";
  if (p.reverse) s += ";7";
  if (p.strike) s += ";9";
  put_color(s, p.fg, false);
  put_color(s, p.bg, true);
  return s + "m";
}

Pen cell_pen(const VTermScreenCell& c) {
  Pen p;
  p.bold = c.attrs.bold;
  p.italic = c.attrs.italic;
  p.underline = int(c.attrs.underline);
  p.blink = c.attrs.blink;
  p.reverse = c.attrs.reverse;
  p.strike = c.attrs.strike;
  p.fg = c.fg;
  p.bg = c.bg;
  return p;
}

Pen state_pen(const VTermState* state) {
  Pen p;
  VTermValue v;
  auto flag = [&](VTermAttr a) { return vterm_state_get_penattr(state, a, &v) && v.boolean; };
  p.bold = flag(VTERM_ATTR_BOLD);
  p.italic = flag(VTERM_ATTR_ITALIC);
  p.blink = flag(VTERM_ATTR_BLINK);
  p.reverse = flag(VTERM_ATTR_REVERSE);
  p.strike = flag(VTERM_ATTR_STRIKE);
  if (vterm_state_get_penattr(state, VTERM_ATTR_UNDERLINE, &v)) p.underline = v.number;
  if (vterm_state_get_penattr(state, VTERM_ATTR_FOREGROUND, &v)) p.fg = v.color;
  if (vterm_state_get_penattr(state, VTERM_ATTR_BACKGROUND, &v)) p.bg = v.color;
  return p;
}

std::string cursor_to(int row, int col) { return "\x1b[" + std::to_string(row + 1) + ";" + std::to_string(col + 1) + "H"; }

int on_prop(VTermProp prop, VTermValue* val, void* user) {
  auto* props = static_cast<TerminalScreen::Props*>(user);
  if (prop == VTERM_PROP_CURSORVISIBLE) props->cursor_visible = val->boolean;
  if (prop == VTERM_PROP_ALTSCREEN) props->alt_screen = val->boolean;
  return 1;
}

const VTermScreenCallbacks kCallbacks = {
    .damage = nullptr,
    .moverect = nullptr,
    .movecursor = nullptr,
    .settermprop = on_prop,
    .bell = nullptr,
    .resize = nullptr,
    .sb_pushline = nullptr,
    .sb_popline = nullptr,
};

// Where the earliest of `seqs` starts in `bytes` and how long it is ({npos, 0} for none).
std::pair<size_t, size_t> find_first(std::string_view bytes, std::initializer_list<std::string_view> seqs) {
  std::pair<size_t, size_t> best{std::string_view::npos, 0};
  for (auto seq : seqs)
    if (auto at = bytes.find(seq); at < best.first) best = {at, seq.size()};
  return best;
}

}  // namespace

TerminalScreen::TerminalScreen(int cols, int rows) : cols_(clamp_size(cols)), rows_(clamp_size(rows)) {
  vt_ = vterm_new(rows_, cols_);
  vterm_set_utf8(vt_, 1);
  screen_ = vterm_obtain_screen(vt_);
  state_ = vterm_obtain_state(vt_);
  vterm_screen_set_callbacks(screen_, &kCallbacks, &props_);
  vterm_screen_enable_altscreen(screen_, 1);
  vterm_screen_reset(screen_, 1);
  vterm_input_write(vt_, kPrime.data(), kPrime.size());  // see feed: REP's width is never 0
}

TerminalScreen::~TerminalScreen() { vterm_free(vt_); }

// libvterm 0.1.4 loops for ever on REP (CSI Ps b, "repeat the last character") when nothing was
// printed before it: its repeat width is still 0 (found by fuzz_cast_index). Any program could
// hang the indexing thread with printf '\e[b', so REP never reaches libvterm: feed() copies the
// bytes through, keeping the last printed character, and writes each REP as that character
// repeated (as far as the row goes, as REP does), or drops it when there is none. A CSI's C0
// controls run before it, as libvterm runs them in place.
void TerminalScreen::feed(std::string_view bytes) {
  Repeat& r = repeat_;
  std::string out;
  out.reserve(bytes.size());
  for (char ch : bytes) {
    auto c = static_cast<unsigned char>(ch);
    switch (r.state) {
      case Repeat::kText:
        if (c == 0x1b) {
          r.state = Repeat::kEscape;
          r.lead = "\x1b";
        } else if (c < 0x20 || c == 0x7f) {
          out += ch;
        } else {
          out += ch;
          if (c < 0x80) {
            r.last.assign(1, ch);
            r.partial.clear();
          } else if (c >= 0xC0) {
            r.partial.assign(1, ch);
            r.need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
          } else if (!r.partial.empty()) {
            r.partial += ch;
            if (r.partial.size() == r.need) r.last = std::move(r.partial), r.partial.clear();
          }
        }
        break;
      case Repeat::kEscape:
        // libvterm takes ESC, intermediates, then '[' as a CSI too (found by fuzz_cast_index).
        if (c == '[') {
          r.lead += ch;
          r.state = Repeat::kCsi;
          r.csi.clear();
        } else if (c >= 0x20 && c <= 0x2f && r.lead.size() < 8) {
          r.lead += ch;
        } else if (c == 0x1b) {
          out += r.lead;  // the escape so far, then another
          r.lead = "\x1b";
        } else if (c == 0x18 || c == 0x1a) {  // CAN, SUB: cancel it
          r.state = Repeat::kText;
        } else if (c < 0x20) {
          out += ch;  // libvterm runs a C0 control inside an escape and goes on with it
        } else {
          out += r.lead;
          out += ch;
          // After a reset libvterm's repeat width is 0 again: print a blank where the cursor
          // is (home), so no REP that slips through can loop.
          if (r.lead == "\x1b" && c == 'c') out += kPrime;
          r.state = Repeat::kText;
        }
        break;
      case Repeat::kCsi:
        if (c == 0x1b) {  // cancels the CSI, starts another escape
          r.state = Repeat::kEscape;
          r.lead = "\x1b";
        } else if (c == 0x18 || c == 0x1a) {  // CAN, SUB: cancel it
          r.state = Repeat::kText;
        } else if (c < 0x20) {
          out += ch;
        } else if (c < 0x40 && r.csi.size() < 64) {
          r.csi += ch;
        } else if (c < 0x40) {  // too long to be one: let libvterm have it as it came
          out += r.lead + r.csi + ch;
          r.state = Repeat::kText;
        } else {
          r.state = Repeat::kText;
          if (c != 'b' || r.csi.find_first_not_of("0123456789") != std::string::npos) {
            out += r.lead + r.csi + ch;
            break;
          }
          if (r.last.empty()) break;
          write(out);
          out.clear();
          VTermPos at;
          vterm_state_get_cursorpos(state_, &at);
          long n = r.csi.empty() ? 1 : std::max(1L, std::atol(r.csi.substr(0, 6).c_str()));
          n = std::min<long>(n, std::max(0, cols_ - at.col));
          for (long i = 0; i < n; ++i) out += r.last;
        }
        break;
    }
  }
  write(out);
}

// libvterm shows only the screen in use, so the main screen is painted into a snapshot just
// before a program switches to the alternate one: it does not change until the program leaves.
// (A switch written in two chunks, or in a combined mode sequence, is not seen: the main screen
// is then blank in later snapshots.)
void TerminalScreen::write(std::string_view bytes) {
  while (!bytes.empty()) {
    auto [at, len] = props_.alt_screen ? find_first(bytes, {"\x1b[?1049l", "\x1b[?1047l", "\x1b[?47l"})
                                       : find_first(bytes, {"\x1b[?1049h", "\x1b[?1047h", "\x1b[?47h"});
    if (at == std::string_view::npos) {
      vterm_input_write(vt_, bytes.data(), bytes.size());
      return;
    }
    vterm_input_write(vt_, bytes.data(), at);
    if (!props_.alt_screen) main_screen_ = paint();
    vterm_input_write(vt_, bytes.data() + at, len);
    bytes.remove_prefix(at + len);
  }
}

void TerminalScreen::resize(int cols, int rows) {
  cols_ = clamp_size(cols);
  rows_ = clamp_size(rows);
  vterm_set_size(vt_, rows_, cols_);
}

std::string TerminalScreen::snapshot() const {
  if (!props_.alt_screen) return paint();
  // The main screen, then the switch (which saves the main screen's cursor), then this one.
  return main_screen_ + "\x1b[?1049h" + paint() + (props_.cursor_visible ? "\x1b[?25h" : "");
}

std::string TerminalScreen::paint() const {
  std::string out;
  const std::string plain = sgr(Pen{});
  std::string pen = plain;  // what the terminal's pen is after a reset
  VTermScreenCell cell;
  for (int row = 0; row < rows_; ++row) {
    // Up to the last cell that shows something: the rest of a reset row is blank already.
    int end = 0;
    for (int col = 0; col < cols_; ++col) {
      vterm_screen_get_cell(screen_, VTermPos{row, col}, &cell);
      bool blank = (cell.chars[0] == 0 || cell.chars[0] == ' ') && sgr(cell_pen(cell)) == plain;
      if (!blank) end = col + 1;
    }
    if (end == 0) continue;
    out += cursor_to(row, 0);
    for (int col = 0; col < end; ++col) {
      vterm_screen_get_cell(screen_, VTermPos{row, col}, &cell);
      if (cell.chars[0] == uint32_t(-1)) continue;  // the right half of a wide character
      std::string want = sgr(cell_pen(cell));
      if (want != pen) out += want, pen = want;
      if (cell.chars[0] == 0) {
        out += ' ';
        continue;
      }
      for (int i = 0; i < VTERM_MAX_CHARS_PER_CELL && cell.chars[i]; ++i) put_utf8(out, cell.chars[i]);
      if (cell.width == 2) ++col;
    }
  }
  std::string now = sgr(state_pen(state_));
  if (now != pen) out += now;
  VTermPos at;
  vterm_state_get_cursorpos(state_, &at);
  out += cursor_to(std::clamp(at.row, 0, rows_ - 1), std::clamp(at.col, 0, cols_ - 1));
  if (!props_.cursor_visible) out += "\x1b[?25l";
  return out;
}

std::string TerminalScreen::row_text(int row) const {
  std::string out;
  VTermScreenCell cell;
  for (int col = 0; col < cols_; ++col) {
    vterm_screen_get_cell(screen_, VTermPos{row, col}, &cell);
    if (cell.chars[0] == uint32_t(-1)) continue;
    if (cell.chars[0] == 0) out += ' ';
    for (int i = 0; i < VTERM_MAX_CHARS_PER_CELL && cell.chars[i]; ++i) put_utf8(out, cell.chars[i]);
  }
  return out.substr(0, out.find_last_not_of(' ') + 1);
}

std::string TerminalScreen::cells_fingerprint() const {
  std::string out = std::to_string(cols_) + "x" + std::to_string(rows_) + (props_.alt_screen ? " alt" : "") + "\n";
  VTermScreenCell cell;
  for (int row = 0; row < rows_; ++row) {
    for (int col = 0; col < cols_; ++col) {
      vterm_screen_get_cell(screen_, VTermPos{row, col}, &cell);
      out += sgr(cell_pen(cell));
      for (int i = 0; i < VTERM_MAX_CHARS_PER_CELL && cell.chars[i]; ++i) put_utf8(out, cell.chars[i]);
      out += cell.chars[0] ? "" : " ";
    }
    out += '\n';
  }
  VTermPos at;
  vterm_state_get_cursorpos(state_, &at);
  return out + "cursor " + std::to_string(at.row) + "," + std::to_string(at.col) +
         (props_.cursor_visible ? "" : " hidden") + " pen " + sgr(state_pen(state_));
}

}  // namespace rx::hub
