# frozen_string_literal: true

require_relative "helper"

# A worker blocked in the C core must stop at once on Ctrl-C (SIGINT),
# SIGTERM (Procfile shutdown) and Thread#kill: the extension releases the GVL
# with an unblocking function that wakes the core.
class TestSignals < ReactisTest
  BOUND = 0.5

  def setup
    super
    @redis = server
  end

  def blocked_child(body)
    code = <<~RUBY
      require "reactis"
      $stdout.sync = true
      sub = Reactis::Subscriber.new(#{@redis.url.inspect})
      sub.subscribe("never")
      #{body}
    RUBY
    ruby_child(code) do |pid, out|
      assert_equal "ready\n", read_line(out)
      sleep 0.2 # let it block inside the core
      yield pid, out
    end
  end

  def test_sigint_stops_blocked_each_message
    blocked_child(<<~RUBY) do |pid, out|
      begin
        puts "ready"
        sub.each_message { puts "message?" }
        puts "returned"
      rescue Interrupt
        puts "interrupted"
        exit 3
      end
    RUBY
      t0 = monotonic
      Process.kill("INT", pid)
      status = wait_exit(pid)
      elapsed = monotonic - t0
      assert_equal "interrupted\n", out.gets
      assert_equal 3, status.exitstatus
      assert_operator elapsed, :<, BOUND
    end
  end

  def test_sigterm_default_kills_blocked_each_message
    blocked_child(<<~RUBY) do |pid, _out|
      puts "ready"
      sub.each_message { }
    RUBY
      t0 = monotonic
      Process.kill("TERM", pid)
      status = wait_exit(pid)
      assert_operator monotonic - t0, :<, BOUND
      assert_equal Signal.list["TERM"], status.termsig
    end
  end

  def test_sigterm_trap_stops_gracefully
    blocked_child(<<~RUBY) do |pid, out|
      trap("TERM") { sub.stop }
      puts "ready"
      sub.each_message { }
      puts "stopped"
      sub.close
    RUBY
      t0 = monotonic
      Process.kill("TERM", pid)
      status = wait_exit(pid)
      assert_operator monotonic - t0, :<, BOUND
      assert_equal "stopped\n", out.gets
      assert status.success?
    end
  end

  def test_sigint_stops_blocked_command
    code = <<~RUBY
      require "reactis"
      $stdout.sync = true
      c = Reactis::Client.new(#{@redis.url.inspect}, timeout: 0)
      c.ping
      puts "ready"
      begin
        c.command("BLPOP", "nothing", 0)
      rescue Interrupt
        puts "interrupted"
      end
      puts c.ping
    RUBY
    ruby_child(code) do |pid, out|
      assert_equal "ready\n", read_line(out)
      sleep 0.2
      t0 = monotonic
      Process.kill("INT", pid)
      assert_equal "interrupted\n", read_line(out)
      assert_operator monotonic - t0, :<, BOUND
      assert_equal "true\n", read_line(out)
      assert wait_exit(pid).success?
    end
  end

  def test_thread_kill_stops_blocked_each_message
    sub = closing(Reactis::Subscriber.new(@redis.url))
    sub.subscribe("never")
    started = Queue.new
    ensured = false
    t = Thread.new do
      started << true
      sub.each_message { }
    ensure
      ensured = true
    end
    started.pop
    sleep 0.2
    t0 = monotonic
    t.kill
    assert t.join(BOUND), "the thread did not die within #{BOUND} s"
    assert_operator monotonic - t0, :<, BOUND
    assert ensured
    refute t.alive?
    # The subscriber is still usable from another thread.
    c = closing(Reactis::Client.new(@redis.url))
    c.publish("never", "after")
    assert_equal "after", sub.next_message(timeout: 5).data
  end

  def test_thread_kill_stops_blocked_command
    c = closing(Reactis::Client.new(@redis.url, timeout: 0))
    c.ping
    t = Thread.new { c.command("BLPOP", "nothing", 0) }
    sleep 0.2
    t.kill
    assert t.join(BOUND), "the thread did not die within #{BOUND} s"
  end

  def test_timeout_interrupts_blocked_call
    sub = closing(Reactis::Subscriber.new(@redis.url))
    sub.subscribe("never")
    t0 = monotonic
    assert_raises(Timeout::Error) { Timeout.timeout(0.2) { sub.each_message { } } }
    assert_operator monotonic - t0, :<, 0.2 + BOUND
  end

  def test_other_threads_run_while_blocked
    sub = closing(Reactis::Subscriber.new(@redis.url))
    sub.subscribe("never")
    reader = Thread.new { sub.next_message(timeout: 2) }
    sleep 0.05
    counter = Thread.new do
      n = 0
      t0 = monotonic
      n += 1 while monotonic - t0 < 0.5
      n
    end
    assert_operator counter.value, :>, 100_000
    assert reader.alive?
    sub.wakeup
    assert_nil reader.value
  end
end
