// TerminalScreen: a snapshot painted on a reset screen of the same size shows the same cells
// (characters, wide ones, attributes, colours of all three kinds), with the same cursor and pen,
// so output that follows lands where it would have.
#include "hub/fanout/terminal_screen.h"

#include <gtest/gtest.h>

#include <string>

namespace rx::hub {
namespace {

// A fresh screen of `from`'s size with `from`'s snapshot painted on it.
std::string repainted(const TerminalScreen& from) {
  TerminalScreen to(from.cols(), from.rows());
  to.feed(from.snapshot());
  return to.cells_fingerprint();
}

TEST(TerminalScreen, ASnapshotRepaintsColoursAttributesWideCharactersAndTheCursor) {
  TerminalScreen s(40, 8);
  s.feed("plain line\r\n");
  s.feed("\x1b[1mbold\x1b[0m \x1b[3;4mitalic-under\x1b[0m \x1b[7mrev\x1b[0m \x1b[9mstrike\x1b[0m\r\n");
  s.feed("\x1b[31mred\x1b[0m \x1b[92mbright\x1b[0m \x1b[38;5;208m208\x1b[0m \x1b[38;2;1;2;3mrgb\x1b[0m \x1b[44mbluebg\x1b[0m\r\n");
  s.feed("wide: \xe4\xb8\xad\xe6\x96\x87 ok \xf0\x9f\x99\x82 done\r\n");
  s.feed("\x1b[45m\x1b[K\x1b[0m\r\n");   // a row erased with a background colour: coloured blanks
  s.feed("\x1b[6;20Hplaced\x1b[3;1H");   // text away from the left, then the cursor moved up
  s.feed("\x1b[1;33m");                  // and a pen the next output will use
  EXPECT_EQ(s.row_text(0), "plain line");
  EXPECT_EQ(s.row_text(3), "wide: \xe4\xb8\xad\xe6\x96\x87 ok \xf0\x9f\x99\x82 done");
  EXPECT_EQ(s.row_text(5), std::string(19, ' ') + "placed");
  EXPECT_EQ(repainted(s), s.cells_fingerprint());

  // Output after the snapshot lands in the same place, in the same pen, on both.
  TerminalScreen copy(s.cols(), s.rows());
  copy.feed(s.snapshot());
  copy.feed("X\x1b[0mY");
  s.feed("X\x1b[0mY");
  EXPECT_EQ(copy.cells_fingerprint(), s.cells_fingerprint());
  EXPECT_EQ(copy.row_text(2), s.row_text(2));
}

TEST(TerminalScreen, AHiddenCursorAndTheAlternateScreenCarryOver) {
  TerminalScreen s(30, 5);
  s.feed("main screen text");
  s.feed("\x1b[?1049h\x1b[2J\x1b[Hfull-screen app\x1b[?25l");
  EXPECT_EQ(s.row_text(0), "full-screen app");
  std::string fp = s.cells_fingerprint();
  EXPECT_NE(fp.find(" alt\n"), std::string::npos) << fp;
  EXPECT_NE(fp.find(" hidden "), std::string::npos) << fp;
  EXPECT_EQ(repainted(s), fp);

  // When the program leaves, the main screen it covered comes back, cursor and all, on both.
  TerminalScreen copy(s.cols(), s.rows());
  copy.feed(s.snapshot());
  s.feed("\x1b[?1049l\x1b[?25h after");
  copy.feed("\x1b[?1049l\x1b[?25h after");
  EXPECT_EQ(s.row_text(0), "main screen text after");
  EXPECT_EQ(copy.cells_fingerprint(), s.cells_fingerprint());
}

TEST(TerminalScreen, ResizeKeepsTheTextAndClampsNonsense) {
  TerminalScreen s(20, 4);
  s.feed("hello");
  s.resize(50, 10);
  EXPECT_EQ(s.cols(), 50);
  EXPECT_EQ(s.rows(), 10);
  EXPECT_EQ(s.row_text(0), "hello");
  EXPECT_EQ(repainted(s), s.cells_fingerprint());
  s.resize(0, -3);
  EXPECT_EQ(s.cols(), 1);
  EXPECT_EQ(s.rows(), 1);
  s.resize(100000, 100000);
  EXPECT_EQ(s.cols(), 1000);
  EXPECT_EQ(s.rows(), 1000);
}

// libvterm 0.1.4 hangs on REP before any character was printed; the screen never passes it REP,
// and writes what REP means instead.
TEST(TerminalScreen, RepeatIsPlayedAsTheCharacterItRepeatsAndNeverHangs) {
  TerminalScreen fresh(20, 3);
  fresh.feed("\x1b[b\x1b[01b\x1b[5b");  // nothing printed yet: nothing to repeat
  EXPECT_EQ(fresh.row_text(0), "");
  fresh.feed("ab\x1b[3b-\x1b[");      // a REP split across two chunks
  fresh.feed("2b|");
  EXPECT_EQ(fresh.row_text(0), "abbbb---|");
  fresh.feed("\r\n\xe4\xb8\xad\x1b[2b");  // a wide character, repeated
  EXPECT_EQ(fresh.row_text(1), "\xe4\xb8\xad\xe4\xb8\xad\xe4\xb8\xad");
  fresh.feed("\r\nx\x1b[999999999b");     // no further than the row
  EXPECT_EQ(fresh.row_text(2), std::string(20, 'x'));
  fresh.feed("\x1b" "c\x1b[3b\x1b[2;5Hz\x1b[2\rb");  // after a reset; a CR inside the CSI runs first
  EXPECT_EQ(fresh.row_text(1).substr(0, 5), "zz  z");

  // libvterm also takes ESC, an intermediate, then '[' as a CSI; after a reset nothing was
  // printed again; a C0 control may sit inside the escape. None of these may hang.
  for (std::string hostile : {"\x1b([b", "\x1b)#[3b", "\x1b" "c\x1b([b", "\x1b\r[b", "\x1b" "c\x1b[b"}) {
    TerminalScreen s(10, 2);
    s.feed(hostile);
    s.feed("ok");
    EXPECT_EQ(s.row_text(0).substr(s.row_text(0).size() - 2), "ok") << hostile;
  }
}

TEST(TerminalScreen, AnEmptyScreenSnapshotsToACursorHomeOnly) {
  TerminalScreen s(80, 24);
  EXPECT_EQ(s.snapshot(), "\x1b[1;1H");
  EXPECT_EQ(repainted(s), s.cells_fingerprint());
}

}  // namespace
}  // namespace rx::hub
