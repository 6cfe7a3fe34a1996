// Agent: the rexec-agent runtime on libwebsockets' own poll loop (the static libwebsockets has no
// libuv). It keeps one link to the hub, reconnecting forever with full-jitter backoff, and the
// channels the hub opened, which live on while the link is down. PTY, pipe and pid fds join the
// loop as adopted raw-file descriptors (dups, so lws may close its copy); a stream out of credit
// is simply unwatched, and watched again when an ACK returns credit.
#pragma once

#include <libwebsockets.h>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "agent/backoff.h"
#include "agent/channel.h"
#include "agent/handover.h"
#include "agent/host.h"
#include "agent/notify.h"
#include "agent/ws_frame.h"

namespace rx::agent {

struct AgentOptions {
  std::string hub;              // ws://host:port, wss://host:port, or a unix socket path
  std::string token;            // credential (rxa_) or enrollment token (rxe_)
  std::string credential_file;  // where a credential from enrollment is stored
  std::string name;             // shown on the dashboard; default: hostname
  std::map<std::string, std::string> labels;  // sent in HELLO (protocol/labels.h, checked already)
  std::string ca_file;
  HostPaths host;
  ChannelConfig channels;
  // For upgrades in place (SIGHUP): the binary's path, read at startup (an installer replaces the
  // file there), and the argv to run it with (no secrets: they are read from files).
  std::string self_path;
  std::vector<std::string> argv;
};

class Agent {
 public:
  // `inherited`: what a predecessor handed over (handover.h); its terminals are resumed.
  static Result<std::unique_ptr<Agent>> create(AgentOptions options, InheritedFds inherited = {});
  ~Agent();
  // Runs until SIGTERM/SIGINT or a revoked credential. Returns the process exit code. Under
  // systemd, SIGTERM first hands every terminal to the fd store for the next agent of the unit;
  // SIGHUP re-executes the binary at self_path in place, terminals and all (docs/agent-upgrades.md).
  int run();

 private:
  struct Timer {
    lws_sorted_usec_list_t sul;  // first member: the lws callback casts back to Timer
    Agent* self;
  };
  struct Watch {
    Agent* self;
    uint32_t channel;
    enum Kind { kOutput, kStderr, kInput, kPid, kSignal } kind;
    lws* wsi = nullptr;
  };
  struct Watches {
    std::unique_ptr<Watch> out, err, in, pid;
  };

  explicit Agent(AgentOptions options);
  // The lws protocol of the fds it watches (agent_fds.cpp); the link's is rexec.agent.v1.
  static constexpr const char* kFdProtocol = "rexec-fd";
  static int callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len);
  int on_link(lws* wsi, lws_callback_reasons reason, void* in, size_t len);
  int on_fd(lws* wsi, lws_callback_reasons reason);

  void connect();
  void schedule_reconnect();
  void link_down(const std::string& why);
  void on_frame(const protocol::Frame& frame);
  void on_welcome(const protocol::Welcome& w);
  void open_channel(const protocol::Open& o);
  void open_file_channel(const protocol::FileOpen& f);
  // Both: ERROR then CLOSE when `open` fails, else OPENED and the channel joins the table.
  void start_channel(uint32_t id, std::string_view kind, std::string_view op,
                     const std::function<Result<std::unique_ptr<Channel>>()>& open);
  void close_channel(uint32_t id);
  void service(uint32_t id);  // after any event on a channel: ACKs, EXIT, CLOSE, watches
  void send_control(const protocol::Frame& frame);
  bool write_next();
  bool has_data() const;
  void want_write();
  void write_due();
  void watch(std::unique_ptr<Watch>& slot, uint32_t channel, Watch::Kind kind, int fd);
  void unwatch(std::unique_ptr<Watch>& slot);
  void update_watches(uint32_t id);
  void rearm_input();  // after each service round: see the writable case of on_fd()
  void adopt_channels(InheritedFds& inherited);
  // The handover: the state memfd and every fd to go with it (name, fd); -1 state when it failed.
  std::pair<int, std::vector<std::pair<std::string, int>>> prepare_handover();
  void upgrade_in_place();      // SIGHUP: re-exec; returns only if that failed
  void hand_over_to_systemd();  // SIGTERM under systemd: FDSTORE=1
  void tick();
  void stats();
  void status(const std::string& text);
  void arm(Timer& t, void (Agent::*fn)(), lws_usec_t us);

  AgentOptions options_;
  lws_context* context_ = nullptr;
  lws_vhost* vhost_ = nullptr;
  lws* link_ = nullptr;
  bool welcomed_ = false;
  bool stopping_ = false;
  bool upgrade_requested_ = false;
  bool deferring_ = false;  // inside a data callback: want_write() only marks write_due_
  bool write_due_ = false;
  int exit_code_ = 0;
  std::string address_;
  int port_ = 0;
  bool tls_ = false;
  std::string host_header_;
  lws_retry_bo_t retry_{};
  Backoff backoff_;
  Notifier notifier_;
  bool ready_sent_ = false;
  Channel::Clock::time_point last_watchdog_{};
  Channel::Clock::time_point restart_until_{};  // after a 4012 close: retry fast until then
  StatsSampler sampler_;
  std::vector<uint8_t> partial_;
  std::deque<std::vector<uint8_t>> control_;  // small frames first: ACKs must not wait behind data
  std::map<uint32_t, std::unique_ptr<Channel>> channels_;
  std::map<uint32_t, Watches> watches_;
  std::set<uint32_t> rearm_;  // channels whose input watch wants POLLOUT again
  uint32_t rr_next_ = 0;  // round-robin position among channels with data
  ClientFramer framer_;
  Timer reconnect_timer_{}, stats_timer_{}, tick_timer_{};
  std::map<Timer*, void (Agent::*)()> timer_fns_;
  Watches signals_;
  int signal_fd_ = -1;
  std::vector<lws_protocols> protocols_;
};

}  // namespace rx::agent
