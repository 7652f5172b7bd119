# frozen_string_literal: true

require_relative "helper"

# Timers, templates, Subscriber#on routing, once-only claims and the expiry
# bridge through the Ruby wrapper.
class TestTimers < ReactisTest
  def setup
    super
    @redis = server
  end

  def timers(name = "rbtimers", **opts)
    closing(Reactis::Timers.new(name, url: @redis.url, **opts))
  end

  # ------------------------------------------------------------ timers

  def test_touch_stop_watch
    t = timers(backoff_base: 0.05, backoff_max: 0.1)
    t0 = monotonic
    assert t.touch("dev:1", 0.2, "old")
    refute t.touch("dev:1", 0.3, "new\0data")  # a reset, not a new timer
    assert t.touch("dev:2", 0.2)
    assert t.stop("dev:2")
    refute t.stop("dev:2")
    refute t.stop("never")
    assert_empty t.fetch(timeout: 0)
    got = []
    n = t.watch(timeout: 1) { |id, data| got << [id, data] }
    assert_equal 1, n
    assert_equal [["dev:1", "new\0data"]], got
    assert_equal Encoding::BINARY, got[0][1].encoding
    assert monotonic - t0 >= 0.25
    st = t.stats
    assert_equal 1, st[:acked]
    assert_equal 0, st[:scheduled]
  end

  def test_watch_retries_on_raise_and_fired_objects
    t = timers(backoff_base: 0.05, backoff_max: 0.1)
    t.touch("flaky", 0, "x")
    calls = 0
    n = t.watch(timeout: 1.5) do |_id, _data, fired|
      calls += 1
      assert_kind_of Reactis::Timers::Fired, fired
      raise "first time fails" if calls == 1
    end
    assert_equal 2, n
    assert_equal 1, t.stats[:failures]
    t.touch_at("abs", Time.now + 0.1, "A")
    f = t.fetch(timeout: 5).first
    assert_equal "abs", f.id
    assert_equal "A", f.data
    assert_equal f.due_ms, f.deadline_ms
    assert f.fired_ms >= f.deadline_ms
    f.ack!
  end

  def test_touch_many_and_offline_backlog
    t = timers
    assert_equal 50, t.touch_many((0...50).to_h { |i| ["d#{i}", "1"] }, ttl: 0.05)
    assert_equal 0, t.touch_many((0...50).map { |i| ["d#{i}", 0.05, "2"] })
    sleep 0.5 # every deadline passes while nobody watches
    w = timers
    got = []
    w.each_fired(timeout: 1, batch: 100) do |f|
      got << f
      assert f.fired_ms - f.deadline_ms >= 300
      f.ack!
    end
    assert_equal 50, got.map(&:id).uniq.size
    assert_equal ["2"], got.map(&:data).uniq
    assert_raises(ArgumentError) { t.touch_many([%w[a no-ttl]]) }
  end

  def test_concurrent_touchers_in_other_processes
    ids = (0...20).map { |i| "dev#{i}" }
    code = <<~RUBY
      require "reactis"
      t = Reactis::Timers.new("rbtouch", url: #{@redis.url.inspect})
      20.times do
        t.touch_many(#{ids.inspect}.to_h { |i| [i, "alive"] }, ttl: 0.5)
        sleep 0.1
      end
      puts Time.now.to_f
      $stdout.flush
      t.close
    RUBY
    w = timers("rbtouch")
    stops = []
    ruby_child(code) do |_p1, out1|
      ruby_child(code) do |_p2, out2|
        readers = [out1, out2]
        deadline = monotonic + 20
        while stops.size < 2 && monotonic < deadline
          fired = w.fetch(max: 100, timeout: 0.2)
          assert_empty fired.map(&:id), "fired while being touched"
          ready = IO.select(readers, nil, nil, 0)
          ready&.first&.each do |io|
            line = io.gets
            next unless line
            stops << line.to_f
            readers.delete(io)
          end
        end
      end
    end
    assert_equal 2, stops.size
    fired = []
    deadline = monotonic + 5
    while fired.size < ids.size && monotonic < deadline
      batch = w.fetch(max: 100, timeout: 0.5)
      batch.each(&:ack!)
      fired.concat(batch)
    end
    assert_equal ids.sort, fired.map(&:id).sort
    assert fired.map(&:deadline_ms).min / 1000.0 >= stops.max + 0.5 - 0.2
    assert_empty w.fetch(max: 100, timeout: 0.7)
  end

  def test_wakeup_and_thread_kill
    t = timers
    Thread.new { sleep 0.3; t.wakeup }
    t0 = monotonic
    assert_equal 0, t.watch { |_id, _data| nil }
    assert monotonic - t0 < 3
    th = Thread.new { t.watch { |_id, _data| nil } }
    sleep 0.3
    th.kill
    assert th.join(3), "Thread#kill did not stop a watch"
  end

  def test_arguments
    assert_raises(Reactis::InvalidArgumentError) { Reactis::Timers.new("a{b}", url: @redis.url) }
    assert_raises(TypeError) { Reactis::Timers.new(42, url: @redis.url) }
    t = timers(max_payload: 3)
    assert_raises(Reactis::InvalidArgumentError) { t.touch("x", -1) }
    assert_raises(TypeError) { t.touch("x", "soon") }
    assert_raises(ArgumentError) { t.touch("", 1) }
    assert_raises(Reactis::PayloadTooLargeError) { t.touch("x", 1, "1234") }
    t.close
    assert_raises(Reactis::StateError) { t.touch("x", 1) }
  end

  # ------------------------------------------------------------ templates

  def test_templates
    t = Reactis::Template.new("user:{user_id}:notifications")
    assert_equal [:user_id], t.names
    assert_equal "user:*:notifications", t.glob
    assert_equal({ user_id: "42" }, t.match("user:42:notifications"))
    assert_nil t.match("user:42:settings")
    assert t === "user:7:notifications"
    assert_equal "user:42:notifications", t.format(user_id: 42)
    assert_equal "user:x:notifications", t.format("x")
    assert_equal "user:y:notifications", t.format({ "user_id" => "y" })
    two = Reactis::Template.new("{a}:{b}")
    assert_equal({ a: "x", b: "y:z" }, two.match("x:y:z"))
    assert_equal "rx:{sms}:ready", Reactis::Template.new("rx:{{{queue}}}:ready").format(queue: "sms")
    assert_raises(Reactis::InvalidArgumentError) { Reactis::Template.new("user:{id") }
    assert_raises(KeyError) { two.format(a: 1) }
    assert_raises(ArgumentError) { two.format(a: 1, b: 2, c: 3) }
    assert_raises(Reactis::InvalidArgumentError) { two.format(a: "", b: "1") }
    assert_equal Reactis::Template.new("{a}:{b}"), two
  end

  def test_subscriber_on_routes_with_keyword_captures
    c = closing(Reactis::Client.new(@redis.url))
    sub = closing(Reactis::Subscriber.new(@redis.url))
    got = []
    sub.on("user:{user_id}:notifications") { |msg, user_id:| got << [:note, user_id, msg.data] }
    sub.on("chat:{room}") do |msg, caps|
      got << [:chat, caps, msg.data]
      sub.stop if caps[:room] == "last"
    end
    sub.on("pair:{a}:{b}") { |_msg, b:, **| got << [:pair, b] }
    c.publish("user:42:notifications", "hi")
    c.publish("user:7:settings", "not routed")
    c.publish("pair:1:2", "p")
    c.publish("chat:last", "bye")
    assert_equal 3, sub.run(timeout: 5)
    assert_equal [[:note, "42", "hi"], [:pair, "2"], [:chat, { room: "last" }, "bye"]], got
    refute sub.route(Reactis::Message.new(:gap))
  end

  # ------------------------------------------------------------ claims

  def test_claim_once
    url = @redis.url
    assert Reactis.claim_once(url, "rbjobs", "1", 10)
    refute Reactis.claim_once(url, "rbjobs", "1", 10)
    c = closing(Reactis::Client.new(url))
    assert Reactis.claim_once(c, "rbjobs", "2", 10)
    refute Reactis.claim_once(c, "rbjobs", "2", 10)
    assert_operator c.command("PTTL", "rx:claim:{rbjobs}:1"), :>, 5000
    assert Reactis.claim_once(c, "rbshort", "1", 0.1)
    sleep 0.25
    assert Reactis.claim_once(c, "rbshort", "1", 0.1)
    assert_raises(Reactis::InvalidArgumentError) { Reactis.claim_once(c, "a{b}", "1", 1) }
    assert_raises(ArgumentError) { Reactis.claim_once(c, "n", "1", 0) }
  end

  def test_claim_race_across_processes
    code = <<~RUBY
      require "reactis"
      c = Reactis::Client.new(#{@redis.url.inspect})
      puts (0...200).map { |i| Reactis.claim_once(c, "rbrace", i.to_s, 60) ? 1 : 0 }.join
    RUBY
    results = []
    ruby_child(code) do |_a, o1|
      ruby_child(code) do |_b, o2|
        ruby_child(code) do |_c, o3|
          ruby_child(code) do |_d, o4|
            results = [o1, o2, o3, o4].map { |io| read_line(io, 30).strip }
          end
        end
      end
    end
    assert_equal [200] * 4, results.map(&:size)
    200.times { |i| assert_equal 1, results.sum { |r| r[i].to_i }, "id #{i}" }
  end

  # ------------------------------------------------------------ the bridge

  def test_expiry_bridge
    c = closing(Reactis::Client.new(@redis.url))
    bridge = closing(Reactis::ExpiryBridge.new("rbsession:{id}", url: @redis.url))
    assert_equal "shadow:rbsession:{id}", bridge.shadow.source
    c.command("SET", "shadow:rbsession:42", "cart")
    Thread.new do
      sleep 0.3
      c.command("SET", "rbsession:42", "x", "PX", 50)
    end
    got = nil
    bridge.each(timeout: 5) do |exp|
      got = exp
      break
    end
    assert_equal "rbsession:42", got.key
    assert_equal({ id: "42" }, got.captures)
    assert_equal "cart", got.value
    assert_equal 0, c.command("EXISTS", "shadow:rbsession:42")
    keep = closing(Reactis::ExpiryBridge.new("u:{uid}", shadow: "d:{uid}", url: @redis.url,
                                                        delete: false))
    c.command("SET", "d:9", "png")
    msg = Reactis::Message.new(:pmessage, "__keyevent@0__:expired", "u:9",
                               pattern: "__keyevent@*__:expired")
    exp = keep.take(msg)
    assert_equal "png", exp.value
    assert_equal "png", c.command("GET", "d:9")
    assert_nil keep.take(Reactis::Message.new(:message, "chat", "u:9"))
    assert_raises(Reactis::InvalidArgumentError) do
      Reactis::ExpiryBridge.new("s:{id}", shadow: "x:{nope}", url: @redis.url)
    end
  end
end
