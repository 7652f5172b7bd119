# frozen_string_literal: true

require_relative "helper"

class TestQueue < ReactisTest
  def setup
    super
    @redis = server
  end

  def queue(name = "sms", **opts)
    closing(Reactis::Queue.new(name, url: @redis.url, **opts))
  end

  def test_schedule_cancel_reschedule_stats
    q = queue
    s = q.schedule("hello", delay: 900, id: "AAA")
    assert s.added?
    assert_equal "AAA", s.id
    assert_in_delta Time.now + 900, s.due_at, 5
    dup = q.schedule("other", delay: 5, id: "AAA")
    assert dup.exists?
    assert_equal s.due_ms, dup.due_ms
    assert q.schedule("other", delay: 5, id: "AAA", replace: true).replaced?
    st = q.stats
    assert_equal 1, st[:scheduled]
    assert_equal 0, st[:ready]
    assert q.reschedule("AAA", delay: 60)
    refute q.reschedule("nope", delay: 60)
    assert q.cancel("AAA")
    refute q.cancel("AAA")
    assert_equal 0, q.stats[:scheduled]
    gen = q.schedule("x", at: Time.now + 3600)
    assert_match(/\A[0-9A-Za-z]{12}\z/, gen.id)
    assert q.run_now(gen.id)
    assert_equal 1, q.fetch(timeout: 2).size
  end

  def test_schedule_many
    q = queue
    assert_equal [], q.schedule_many([])
    at = Time.now + 7200
    res = q.schedule_many([
      "plain",
      { payload: "\x00\xFFbin".b, id: "m1", delay: 900 },
      { payload: "dup", id: "m1", delay: 5 },
      { payload: "at", id: "m2", at: at },
      { payload: "now", id: "m3" }
    ])
    assert_equal 5, res.size
    assert(res.all? { |r| r.is_a?(Reactis::Queue::Scheduled) })
    assert_match(/\A[0-9A-Za-z]{12}\z/, res[0].id)
    assert res[0].added?
    assert_equal %w[m1 m1 m2 m3], res[1..].map(&:id)
    assert res[1].added?
    assert res[2].exists?
    assert_equal res[1].due_ms, res[2].due_ms
    assert_in_delta Time.now + 900, res[1].due_at, 5
    assert_equal (at.to_r * 1000).round, res[3].due_ms
    assert res[3].added? && res[4].added?
    replaced = q.schedule_many([{ payload: "new", id: "m1", delay: 60, replace: true }])
    assert replaced.first.replaced?
    st = q.stats
    assert_equal 4, st[:scheduled] + st[:ready]
    jobs = q.fetch(max: 10, timeout: 2)
    assert_equal %w[now plain].sort, jobs.map(&:payload).sort
    jobs.each(&:ack!)
    # The same batch again: ids with a waiting message are kept.
    again = q.schedule_many([{ payload: "at", id: "m2", at: at }])
    assert again.first.exists?
    # Many (more than one script call) and from any Enumerable.
    many = q.schedule_many((1..2500).lazy.map { |i| { payload: "p#{i}", id: "bulk:#{i}", delay: 3600 } })
    assert_equal 2500, many.size
    assert(many.all?(&:added?))
    assert_equal "bulk:2500", many.last.id
    assert_equal 2502, q.stats[:scheduled]
  end

  def test_schedule_many_checks_every_item_first
    q = queue(max_payload: 16)
    assert_raises(Reactis::PayloadTooLargeError) { q.schedule_many(["ok", "x" * 17]) }
    assert_raises(ArgumentError) { q.schedule_many([{ payload: "a", bogus: 1 }]) }
    assert_raises(ArgumentError) { q.schedule_many([{ id: "no-payload" }]) }
    assert_raises(Reactis::InvalidArgumentError) { q.schedule_many([{ payload: "a", id: "i" * 257 }]) }
    assert_raises(ArgumentError) { q.schedule_many([{ payload: "a", delay: 1, at: Time.now }]) }
    assert_raises(TypeError) { q.schedule_many(["ok", 42]) }
    assert_raises(TypeError) { q.schedule_many(nil) }
    st = q.stats
    assert_equal 0, st[:scheduled] + st[:ready]
    # The handle is still usable and its batch was cleared.
    assert_equal ["after"], q.schedule_many([{ payload: "ok", id: "after" }]).map(&:id)
    assert q.cancel("after")
  end

  def test_schedule_many_encoding
    q = queue(encoding: "UTF-8")
    res = q.schedule_many([{ payload: "caf\u00e9", id: "\u00e9t\u00e9" }])
    assert_equal "\u00e9t\u00e9", res.first.id
    assert_equal Encoding::UTF_8, res.first.id.encoding
  end

  def test_delivery_binary_and_on_time
    q = queue
    payload = "\x00\xFFbinary\x00".b
    t0 = monotonic
    q.schedule(payload, delay: 0.3, id: "bin")
    jobs = q.fetch(timeout: 5)
    elapsed = monotonic - t0
    assert_equal 1, jobs.size
    job = jobs.first
    assert_equal payload, job.payload
    assert_equal Encoding::BINARY, job.payload.encoding
    assert_equal "bin", job.id
    assert_equal 1, job.attempt
    assert_operator elapsed, :>=, 0.25
    assert_operator elapsed, :<, 2
    assert job.ack!
    assert_raises(Reactis::StaleDeliveryError) { q.ack(job) }
    assert_equal 1, q.stats[:acked]
  end

  def test_work_acks_and_retries
    q = queue(backoff_base: 0.05, backoff_max: 0.1)
    q.schedule("ok-1", id: "j1")
    q.schedule("boom", id: "j2")
    q.schedule("ok-2", id: "j3")
    seen = []
    q.work do |job|
      seen << [job.id, job.attempt]
      raise "handler failed" if job.payload == "boom" && job.attempt == 1
      q.stop if seen.map(&:first).uniq.size == 3 && seen.size == 4
    end
    assert_equal 4, seen.size
    assert_includes seen, ["j2", 1]
    assert_includes seen, ["j2", 2]
    st = q.stats
    assert_equal 3, st[:acked]
    assert_equal 1, st[:failures]
    assert_equal 0, st[:in_flight]
  end

  def test_ack_many
    q = queue
    q.schedule_many((1..5).map { |i| { payload: "a#{i}", id: "a#{i}" } })
    jobs = q.fetch(max: 10, timeout: 2)
    assert_equal 5, jobs.size
    assert_equal 0, q.ack_many([])
    jobs.first.ack!
    # The acked one is skipped; tokens work as Jobs do.
    assert_equal 4, q.ack_many(jobs[0..3] + [jobs[4].token])
    assert_equal 0, q.ack_many(jobs)
    assert_raises(TypeError) { q.ack_many([42]) }
    st = q.stats
    assert_equal 5, st[:acked]
    assert_equal 0, st[:in_flight]
  end

  def script_calls
    @redis.command("INFO", "commandstats").scan(/^cmdstat_eval(?:sha)?:calls=(\d+)/).flatten.sum(&:to_i)
  end

  # fetch(ack:): the previous batch's acks ride on the fetch's script call;
  # a stale one is skipped; they are made even when nothing is due; bad
  # input is refused before anything is acked.
  def test_fetch_acks_the_previous_batch_in_the_same_round_trip
    q = queue
    other = queue
    q.schedule_many((1..25).map { |i| "f#{i}" })
    jobs = q.fetch(max: 10, timeout: 2)
    got = jobs.map(&:payload)
    calls0 = script_calls
    rounds = 0
    loop do
      jobs = q.fetch(max: 10, timeout: 0, ack: jobs)
      rounds += 1
      break if jobs.empty?
      got.concat(jobs.map(&:payload))
    end
    assert_equal (1..25).map { |i| "f#{i}" }.sort, got.sort
    assert_equal rounds, script_calls - calls0
    st = q.stats
    assert_equal [25, 0, 0], [st[:acked], st[:in_flight], st[:ready]]
    q.schedule_many(%w[x y])
    jobs = q.fetch(max: 2, timeout: 2)
    other.ack(jobs[1].token)
    assert_equal [], q.fetch(max: 1, timeout: 0, ack: jobs.map(&:token))
    assert_equal 27, q.stats[:acked]
    assert_equal 0, q.stats[:in_flight]
    q.schedule("z")
    z = q.fetch(timeout: 2).first
    assert_raises(Reactis::InvalidArgumentError) { q.fetch(timeout: 0, ack: [z, "not-a-token"]) }
    assert_equal 1, q.stats[:in_flight]
    assert_raises(ArgumentError) { q.fetch(ack: [z] * 1001) }
    assert_raises(TypeError) { q.fetch(ack: [42]) }
    assert_raises(TypeError) { q.fetch(ack: z) }
    assert_equal [], q.fetch(timeout: 0, ack: [z])
    assert_equal 0, q.stats[:in_flight]
    # A wakeup before the fetch: the acks are still made.
    q.schedule("w")
    w = q.fetch(timeout: 2).first
    q.wakeup
    assert_equal [], q.fetch(timeout: 1, ack: [w])
    assert_equal 0, q.stats[:in_flight]
  end

  # Queue#work sends a batch's acks with its next fetch: one script call
  # per batch, not two.
  def test_work_acks_with_the_next_fetch
    q = queue
    q.schedule_many((1..300).map { |i| "p#{i}" })
    q.fetch(max: 1, timeout: 2).each(&:ack!) # the consumer's first fetch does more
    count = 0
    calls0 = script_calls
    q.work(max: 100) { count += 1; q.stop if count == 299 }
    assert_equal 299, count
    # 3 fetches (100, 100, 99), each acking the batch before; the last
    # batch's acks when the loop ends (a stop): 4 script calls, 6 before.
    assert_equal 4, script_calls - calls0
    st = q.stats
    assert_equal [300, 0], [st[:acked], st[:in_flight]]
  end

  def test_work_batches_and_acks_many
    q = queue(backoff_base: 0.05, backoff_max: 0.1)
    n = 300
    q.schedule_many((1..n).map { |i| { payload: i == 7 ? "boom" : "p#{i}", id: "w#{i}" } })
    seen = Hash.new(0)
    q.work do |job|
      seen[job.id] += 1
      raise "handler failed" if job.payload == "boom" && job.attempt == 1
      q.stop if seen.size == n && seen["w7"] == 2
    end
    assert_equal n, seen.size
    assert_equal 2, seen["w7"]
    assert_equal [1], (seen.values - [2]).uniq
    st = q.stats
    assert_equal n, st[:acked]
    assert_equal 1, st[:failures]
    assert_equal 0, st[:in_flight] + st[:ready] + st[:scheduled]
    # A fixed batch size too.
    q.schedule_many((1..120).map { |i| "f#{i}" })
    count = 0
    q.work(max: 50) { count += 1; q.stop if count == 120 }
    assert_equal 120, count
    assert_equal n + 120, q.stats[:acked]
    assert_raises(ArgumentError) { q.work(max: 0) { nil } }
    assert_raises(ArgumentError) { q.work(max: 1001) { nil } }
  end

  # A batch that runs past half the visibility timeout keeps the leases of
  # the jobs still waiting: none is reclaimed or redelivered meanwhile.
  def test_work_slow_batch_keeps_leases
    q = queue(visibility_timeout: 0.6)
    q.schedule_many((1..4).map { |i| { payload: "s#{i}", id: "s#{i}" } })
    other = queue(visibility_timeout: 0.6)
    stolen = []
    seen = []
    q.work(max: 4) do |job|
      seen << [job.id, job.attempt]
      sleep 0.35
      # Another consumer fetching now would reclaim an expired lease.
      stolen.concat(other.fetch(max: 4, timeout: 0))
      q.stop if seen.size == 4
    end
    assert_equal [], stolen.map(&:id)
    assert_equal %w[s1 s2 s3 s4], seen.map(&:first).sort
    assert(seen.all? { |_, attempt| attempt == 1 })
    st = q.stats
    assert_equal 4, st[:acked]
    assert_equal 0, st[:crashes]
    assert_equal 0, st[:in_flight]
  end

  def test_dead_letters
    q = queue(max_attempts: 1)
    q.schedule("poison", id: "p")
    q.work do |job|
      q.stop
      raise ArgumentError, "cannot parse #{job.payload}"
    end
    dead = q.dead_letters
    assert_equal 1, dead.size
    assert_equal "p", dead.first.id
    assert_match(/ArgumentError: cannot parse poison/, dead.first.error)
    assert_equal 1, q.requeue_dead
    assert_equal 1, q.fetch(timeout: 2).size
    assert_equal 0, q.purge_dead
  end

  def test_payload_too_large
    q = queue(max_payload: 10)
    err = assert_raises(Reactis::PayloadTooLargeError) { q.schedule("x" * 11) }
    assert_equal "ETOOBIG", err.name
  end

  def test_wrong_arguments
    assert_raises(Reactis::InvalidArgumentError) { Reactis::Queue.new("a{b}", url: @redis.url) }
    assert_raises(TypeError) { Reactis::Queue.new(42, url: @redis.url) }
    q = queue
    assert_raises(ArgumentError) { q.schedule("x", delay: 1, at: Time.now) }
    assert_raises(TypeError) { q.schedule(nil) }
    assert_raises(TypeError) { q.schedule("x", delay: "soon") }
    assert_raises(ArgumentError) { q.fetch(max: 0) }
    assert_raises(ArgumentError) { q.work }
  end

  def test_stop_wakes_blocked_fetch_and_thread_kill
    q = queue
    t = Thread.new { q.fetch(timeout: nil) }
    sleep 0.2
    t0 = monotonic
    q.stop
    assert_equal [], t.value
    assert_operator monotonic - t0, :<, 0.5
    q2 = queue("other")
    t = Thread.new { q2.fetch(timeout: nil) }
    sleep 0.2
    t.kill
    assert t.join(0.5), "a fetching thread did not die within 0.5 s"
  end

  def test_work_stops_on_sigterm_in_child
    code = <<~RUBY
      require "reactis"
      $stdout.sync = true
      q = Reactis::Queue.new("sms", url: #{@redis.url.inspect})
      q.schedule("one", id: "1")
      q.work do |job|
        puts "got \#{job.payload}"
      end
      puts "stopped"
    RUBY
    ruby_child(code) do |pid, out|
      assert_equal "got one\n", read_line(out)
      sleep 0.2
      t0 = monotonic
      Process.kill("TERM", pid)
      assert_equal "stopped\n", read_line(out)
      assert_operator monotonic - t0, :<, 0.5
      assert wait_exit(pid).success?
    end
    assert_equal 1, queue.stats[:acked]
  end

  def test_concurrency
    q = queue
    20.times { |i| q.schedule(i.to_s, id: "c#{i}") }
    done = Queue.new
    count = 0
    lock = Mutex.new
    worker = Thread.new do
      q.work(concurrency: 3, signals: []) do |_job|
        lock.synchronize { count += 1 }
        done << true if lock.synchronize { count } == 20
      end
    end
    Timeout.timeout(10) { done.pop }
    q.stop
    worker.join(5)
    # The sibling handles stop with the first one.
    assert_equal 20, count
  end
end

class TestRakeTasks < ReactisTest
  # Runs `rake -f DIR/Rakefile task` in a child with env; yields pid and
  # its stdout; kills it if still running at the end.
  def rake_child(dir, task, env, err: $stderr)
    rd, wr = IO.pipe
    rake = begin
      Gem.bin_path("rake", "rake")
    rescue Gem::Exception
      "rake"
    end
    env = env.merge("LOG_LEVEL" => "warn")
    env["RUBYLIB"] = [RUBY_LIB, ENV["RUBYLIB"]].compact.join(File::PATH_SEPARATOR) unless ENV["REACTIS_TEST_INSTALLED"] == "1"
    pid = Process.spawn(env, RbConfig.ruby, rake, "-f", File.join(dir, "Rakefile"), task,
                        chdir: dir, out: wr, err: err, in: File::NULL)
    wr.close
    yield pid, rd
  ensure
    begin
      if pid && !Process.waitpid(pid, Process::WNOHANG)
        Process.kill("KILL", pid)
        Process.wait(pid)
      end
    rescue Errno::ECHILD, Errno::ESRCH
      nil
    end
    rd&.close
  end

  def app_dir(handlers)
    dir = Dir.mktmpdir("reactis-rake")
    File.write(File.join(dir, "handlers.rb"), "$stdout.sync = true\n" + handlers)
    File.write(File.join(dir, "Rakefile"), <<~RUBY)
      require "reactis/tasks"
      namespace :reactis do
        task(:setup) { require "reactis"; require_relative "handlers" }
      end
    RUBY
    @cleanup_dirs = (@cleanup_dirs || []) << dir
    dir
  end

  def teardown
    super
    (@cleanup_dirs || []).each { |d| FileUtils.rm_rf(d) }
  end

  def test_rake_reactis_work_consumes_and_exits_on_term
    redis = server
    dir = app_dir(%(Reactis.handle("sms") { |job| puts "sms \#{job.payload}" }\n))
    q = closing(Reactis::Queue.new("sms", url: redis.url))
    q.schedule("first", id: "1")
    env = { "QUEUE" => "sms", "REDIS_URL" => redis.url, "CONCURRENCY" => "2" }
    rake_child(dir, "reactis:work", env) do |pid, out|
      assert_equal "sms first\n", read_line(out, 20)
      q.schedule("second", id: "2")
      assert_equal "sms second\n", read_line(out)
      t0 = monotonic
      Process.kill("TERM", pid)
      status = wait_exit(pid)
      assert status.success?, "rake exited with #{status.inspect}"
      assert_operator monotonic - t0, :<, 1.0
    end
    assert_equal 2, q.stats[:acked]
  end

  def test_rake_reactis_work_without_handler_fails
    redis = server
    dir = app_dir("")
    env = { "QUEUE" => "nothing", "REDIS_URL" => redis.url }
    rake_child(dir, "reactis:work", env, err: File::NULL) do |pid, _out|
      refute wait_exit(pid, 20).success?
    end
  end

  def test_rake_reactis_listen_dispatches_and_exits_on_term
    redis = server
    dir = app_dir(<<~RUBY)
      Reactis.on_channel("chat") { |msg| puts "chat \#{msg.data}" }
      Reactis.on_pattern("news.*") { |msg| puts "news \#{msg.channel} \#{msg.data}" }
    RUBY
    client = closing(Reactis::Client.new(redis.url))
    rake_child(dir, "reactis:listen", { "REDIS_URL" => redis.url }) do |pid, out|
      wait_until(20, "the listener's subscriptions") do
        redis.command("PUBSUB", "NUMSUB", "chat")[1] == 1 && redis.command("PUBSUB", "NUMPAT") == 1
      end
      client.publish("chat", "hi")
      assert_equal "chat hi\n", read_line(out)
      client.publish("news.tech", "rb")
      assert_equal "news news.tech rb\n", read_line(out)
      t0 = monotonic
      Process.kill("TERM", pid)
      assert wait_exit(pid).success?
      assert_operator monotonic - t0, :<, 1.0
    end
  end
end
