// A terminal screen kept by libvterm (Debian's libvterm 0.1): output bytes go in, and what the
// screen shows comes out as a snapshot, the text that paints it again on a reset terminal. The
// recordings' segmented index (cast_index.h) stores one at the start of every segment, so a
// player can begin anywhere without the output before it.
//
// A snapshot carries the visible cells (characters, wide characters, bold/italic/underline/
// blink/reverse/strike, 16, 256 and 24-bit colours), the pen and the cursor (place, visibility),
// and, while a full-screen program has the alternate screen up, the main screen behind it as it
// was when the program started. It does not carry what libvterm keeps to itself: the scroll
// region, the scrollback, and modes such as origin or insert.
#pragma once

#include <string>
#include <string_view>

struct VTerm;
struct VTermScreen;
struct VTermState;

namespace rx::hub {

class TerminalScreen {
 public:
  TerminalScreen(int cols, int rows);
  ~TerminalScreen();
  TerminalScreen(const TerminalScreen&) = delete;
  TerminalScreen& operator=(const TerminalScreen&) = delete;

  void feed(std::string_view bytes);
  void resize(int cols, int rows);  // clamped to 1..1000 each, as a recording may say anything
  int cols() const { return cols_; }
  int rows() const { return rows_; }
  // What paints this screen on a terminal of cols() x rows() just reset (RIS).
  std::string snapshot() const;
  // Row `row` as text, trailing blanks dropped (for tests and logs).
  std::string row_text(int row) const;
  // Every cell with its attributes, the cursor and the pen, one string: two screens that show
  // the same and go on the same compare equal.
  std::string cells_fingerprint() const;

  // Kept from libvterm's property callbacks: its state has no getter for them.
  struct Props {
    bool cursor_visible = true;
    bool alt_screen = false;
  };

 private:
  std::string paint() const;  // the screen in use: its cells, then the pen and the cursor
  void write(std::string_view bytes);  // to libvterm, REP taken out (see feed)

  // What feed() carries from one chunk to the next to find REP sequences.
  struct Repeat {
    enum { kText, kEscape, kCsi } state = kText;
    std::string lead;     // what opened the escape: ESC, its intermediates, '['
    std::string csi;      // a CSI's parameters so far
    std::string last;     // the last character printed (UTF-8)
    std::string partial;  // one being read, and how many bytes it needs
    size_t need = 0;
  };

  VTerm* vt_;
  VTermScreen* screen_;
  VTermState* state_;
  int cols_, rows_;
  Props props_;
  std::string main_screen_;  // painted as the alternate screen came up (see write)
  Repeat repeat_;
};

}  // namespace rx::hub
