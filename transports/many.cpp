#include "transports/many.h"

#include "base/error.h"

namespace ipcbench {
namespace {

// N links made by the transport's own listen(), one per party.
class EachListener {
 public:
  EachListener(const Transport& t, RunDir& dir, std::size_t max_message,
               const TransportSettings& settings, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) listeners_.push_back(t.listen(dir, max_message, settings));
  }
  std::size_t size() const { return listeners_.size(); }
  const Endpoint& endpoint(std::size_t i) const { return listeners_.at(i)->endpoint(); }
  std::vector<std::unique_ptr<Channel>> accept_all(const SetupWait& wait) {
    std::vector<std::unique_ptr<Channel>> links;
    for (auto& l : listeners_) links.push_back(l->accept(wait));
    return links;
  }

 private:
  std::vector<std::unique_ptr<Listener>> listeners_;
};

class EachServer final : public FanInServer {
 public:
  explicit EachServer(std::vector<std::unique_ptr<Channel>> links) : links_(std::move(links)) {}
  std::vector<Channel*> links() override {
    std::vector<Channel*> out;
    for (auto& l : links_) out.push_back(l.get());
    return out;
  }
  void abort() noexcept override {
    for (auto& l : links_) l->abort();
  }

 private:
  std::vector<std::unique_ptr<Channel>> links_;
};

class EachFanIn final : public FanInListener {
 public:
  EachFanIn(const Transport& t, RunDir& dir, std::size_t max_message,
            const TransportSettings& settings, std::size_t n)
      : each_(t, dir, max_message, settings, n) {}
  std::size_t clients() const override { return each_.size(); }
  const Endpoint& endpoint(std::size_t i) const override { return each_.endpoint(i); }
  std::unique_ptr<FanInServer> accept(const SetupWait& wait) override {
    return std::make_unique<EachServer>(each_.accept_all(wait));
  }

 private:
  EachListener each_;
};

// The baseline fan-out: the publisher writes one copy per subscriber, in order.
class CopiesPublisher final : public FanOutPublisher {
 public:
  explicit CopiesPublisher(std::vector<std::unique_ptr<Channel>> links)
      : links_(std::move(links)) {}
  void publish(std::span<const std::byte> msg) override {
    for (auto& l : links_) l->send(msg);
  }
  void abort() noexcept override {
    for (auto& l : links_) l->abort();
  }

 private:
  std::vector<std::unique_ptr<Channel>> links_;
};

class EachFanOut final : public FanOutListener {
 public:
  EachFanOut(const Transport& t, RunDir& dir, std::size_t max_message,
             const TransportSettings& settings, std::size_t n)
      : each_(t, dir, max_message, settings, n) {}
  std::size_t subscribers() const override { return each_.size(); }
  const Endpoint& endpoint(std::size_t i) const override { return each_.endpoint(i); }
  std::unique_ptr<FanOutPublisher> accept(const SetupWait& wait) override {
    return std::make_unique<CopiesPublisher>(each_.accept_all(wait));
  }

 private:
  EachListener each_;
};

}  // namespace

std::pair<std::size_t, std::size_t> FanInServer::recv_any(std::span<std::byte>) {
  throw ProtocolError("this fan-in form has per-client links, not a shared request queue");
}
void FanInServer::reply(std::size_t, std::span<const std::byte>) {
  throw ProtocolError("this fan-in form has per-client links, not a shared request queue");
}
void FanInServer::abort() noexcept {
  for (Channel* l : links()) l->abort();
}

std::unique_ptr<FanInListener> listen_fan_in_each(const Transport& transport, RunDir& dir,
                                                  std::size_t max_message,
                                                  const TransportSettings& settings,
                                                  std::size_t clients) {
  return std::make_unique<EachFanIn>(transport, dir, max_message, settings, clients);
}

std::unique_ptr<FanOutListener> listen_fan_out_each(const Transport& transport, RunDir& dir,
                                                    std::size_t max_message,
                                                    const TransportSettings& settings,
                                                    std::size_t subscribers) {
  return std::make_unique<EachFanOut>(transport, dir, max_message, settings, subscribers);
}

std::unique_ptr<FanInListener> Transport::listen_fan_in(RunDir&, std::size_t,
                                                        const TransportSettings&, std::size_t,
                                                        const std::string&) const {
  return nullptr;
}
std::unique_ptr<FanOutListener> Transport::listen_fan_out(RunDir&, std::size_t,
                                                          const TransportSettings&,
                                                          std::size_t) const {
  return nullptr;
}

std::unique_ptr<FanInListener> TransportBase::listen_fan_in(RunDir& dir, std::size_t max_message,
                                                            const TransportSettings& settings,
                                                            std::size_t clients,
                                                            const std::string&) const {
  if (info().fan_in.empty()) return nullptr;
  return listen_fan_in_each(*this, dir, max_message, settings, clients);
}
std::unique_ptr<FanOutListener> TransportBase::listen_fan_out(RunDir& dir, std::size_t max_message,
                                                              const TransportSettings& settings,
                                                              std::size_t subscribers) const {
  if (info().fan_out.empty()) return nullptr;
  return listen_fan_out_each(*this, dir, max_message, settings, subscribers);
}

}  // namespace ipcbench
