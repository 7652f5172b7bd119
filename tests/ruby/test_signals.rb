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

  # No signal, no Thread#kill: calls must not raise Reactis::Interrupted.
  # Another Ruby thread wanting the GVL leaves a timer interrupt pending
  # now and then at the moment a call releases the GVL; rb_nogvl
  # (RB_NOGVL_INTR_FAIL) then does not run the call, and the glue reported
  # that as RX_EINTR: the benchmark's producer saw "Interrupted" once or
  # twice per 20,000 schedules. With the glue of before the fix this failed
  # in every run (1 to 4 interruptions); the glue now handles the pending
  # interrupt and runs the call.
  def test_no_interrupted_without_a_signal
    q = closing(Reactis::Queue.new("nosignal", url: @redis.url))
    q.stats
    stop = false
    busy = Thread.new do
      x = 0
      until stop
        x += 1
        Thread.pass if (x % 1000).zero?
      end
    end
    interrupted = Hash.new(0)
    n = 20_000
    ids = []
    n.times do |i|
      ids << q.schedule("p#{i}", delay: 3600).id
    rescue Reactis::Interrupted => e
      interrupted[e.message] += 1
    end
    assert_empty interrupted, "Reactis::Interrupted without a signal"
    assert_equal n, q.stats[:scheduled]
    # The other calls that do not wait take the same path.
    ids.first(2000).each_slice(2) do |a, b|
      assert q.cancel(a)
      assert q.reschedule(b, delay: 7200)
    end
    assert_equal n - 1000, q.stats[:scheduled]
  ensure
    stop = true
    busy&.join
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
