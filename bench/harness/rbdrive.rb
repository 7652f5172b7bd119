# Ruby drivers for the benchmark harness (bench/run.sh); protocol as in
# pydrive.py: "READY", then "RESULT {json}"; consumers log
# "index due_ms recv_ms" per message to --out and run until SIGTERM.
#
#   ruby rbdrive.rb SYSTEM OP --url URL [--n N --start MS --span MS --delay MS
#                                        --batch B --payload BYTES --out FILE]
# SYSTEM: sidekiq, redis-rb (sub), reactis-rb. OP: produce, consume, sub.
require "json"

$stdout.sync = true
SYSTEM, OP = ARGV[0], ARGV[1]
OPTS = { "queue" => "bench", "channel" => "bench", "n" => "1000", "start" => "0", "span" => "0",
         "delay" => "0", "batch" => "0", "payload" => "100", "out" => "/dev/null" }
ARGV[2..].each_slice(2) { |k, v| OPTS[k.sub(/\A--/, "")] = v }
URL = OPTS["url"]
N = OPTS["n"].to_i
START = OPTS["start"].to_i
SPAN = OPTS["span"].to_i
DELAY = OPTS["delay"].to_i
BATCH = OPTS["batch"].to_i
PSIZE = OPTS["payload"].to_i

def now_ms = Process.clock_gettime(Process::CLOCK_REALTIME, :float_millisecond)
def mono = Process.clock_gettime(Process::CLOCK_MONOTONIC)
def due_of(i) = START.positive? ? START + (i * SPAN / N) : 0

def payload(i, due)
  p = "#{i}:#{due.to_i}:"
  p + "x" * [0, PSIZE - p.bytesize].max
end

def result(h) = puts("RESULT " + JSON.generate(h))

def timed(one, many = nil)
  puts "READY"
  t0 = mono
  if BATCH.positive? && many
    (0...N).each_slice(BATCH) { |s| many.call(s) }
  else
    N.times { |i| one.call(i) }
  end
  s = mono - t0
  result(n: N, seconds: s, rate: N / s, batched: BATCH.positive? && !many.nil?, interrupted: $interrupted || 0)
end

# The per-message log of a consumer, as pydrive.py's: lines are collected
# and written once per batch (flush), not one write(2) per message, which
# cost the Ruby drain more than the queue itself.
class Out
  def initialize(path)
    @f = File.open(path, "a")
    @buf = +""
  end

  def line(data, recv = now_ms, due_fallback = nil)
    i, due, = data.split(":", 3)
    due = due_fallback.to_s if due == "0" && due_fallback
    @buf << i << " " << due << " " << format("%.3f", recv) << "\n"
  end

  def flush
    return if @buf.empty?
    @f.write(@buf)
    @f.flush
    @buf.clear
  end
end

def versions
  v = {}
  begin
    require "redis"
    v["redis-rb"] = Redis::VERSION
    require "hiredis"
    v["hiredis-rb"] = Hiredis::VERSION
  rescue LoadError
  end
  begin
    require "sidekiq"
    v["sidekiq"] = Sidekiq::VERSION
  rescue LoadError
  end
  begin
    require "reactis"
    v["reactis-rb"] = Reactis::VERSION
  rescue LoadError, StandardError
  end
  puts JSON.generate(v)
end

case [SYSTEM, OP]
in ["versions", _] then versions

in ["sidekiq", "produce"]
  ENV["REDIS_URL"] = URL
  require "sidekiq"
  require_relative "sk_app"
  Sidekiq.redis(&:ping)
  one = lambda do |i|
    due = due_of(i)
    if due.positive? then Sidekiq::Client.push("class" => BenchJob, "queue" => OPTS["queue"], "args" => [payload(i, due)], "at" => due / 1000.0)
    elsif DELAY.positive? then Sidekiq::Client.push("class" => BenchJob, "queue" => OPTS["queue"], "args" => [payload(i, 0)], "at" => Time.now.to_f + DELAY / 1000.0)
    else Sidekiq::Client.push("class" => BenchJob, "queue" => OPTS["queue"], "args" => [payload(i, now_ms)])
    end
  end
  many = lambda do |idx|
    h = { "class" => BenchJob, "queue" => OPTS["queue"] }
    if START.positive?
      h["args"] = idx.map { |i| [payload(i, due_of(i))] }
      h["at"] = idx.map { |i| due_of(i) / 1000.0 }
    elsif DELAY.positive?
      h["args"] = idx.map { |i| [payload(i, 0)] }
      h["at"] = idx.map { Time.now.to_f + DELAY / 1000.0 }
    else
      h["args"] = idx.map { |i| [payload(i, now_ms)] }
    end
    Sidekiq::Client.push_bulk(h)
  end
  timed(one, many)

in ["sidekiq", "consume"]
  ENV["REDIS_URL"] = URL
  ENV["BENCH_OUT"] = OPTS["out"]
  File.open(OPTS["out"], "a") {}
  require "sidekiq"
  require "sidekiq/cli"
  cli = Sidekiq::CLI.instance
  cli.parse(["-r", File.join(__dir__, "sk_app.rb"), "-q", OPTS["queue"]])
  Sidekiq.logger.level = Logger::WARN
  # The scheduled poller's average interval, set to what Sidekiq computes
  # for one process (average_scheduled_poll_interval, 5 s, times the
  # process count, 1), so that polling is as by default. Set, it also skips
  # the poller's INITIAL_WAIT (10 s, there for the heartbeats of other
  # processes to register before that count is taken): a long-running
  # worker is past it, and the harness need not wait it out at every start.
  Sidekiq.options[:poll_interval_average] = 5 * 1
  puts "READY"
  cli.run
  result(count: -1)

in ["redis-rb", "sub"]
  require "redis"
  require "hiredis"
  r = Redis.new(url: URL, driver: :hiredis)
  got = 0
  t0 = nil
  r.subscribe(OPTS["channel"]) do |on|
    on.subscribe do
      puts "READY"
      $stdin.gets
      t0 = mono
    end
    on.message do
      got += 1
      r.unsubscribe if got >= N
    end
  end
  s = mono - t0
  result(n: got, seconds: s, rate: got / s)

in ["reactis-rb", "produce"]
  require "reactis"
  q = Reactis::Queue.new(OPTS["queue"], url: URL)
  q.stats
  # Reactis::Interrupted was seen here with no signal sent (a pending Ruby
  # interrupt reported as RX_EINTR; fixed in the glue and Queue, see
  # tests/ruby/test_signals.rb): should it come back, it is retried and
  # counted in the result, which run.py prints as a note.
  $interrupted = 0
  one = lambda do |i|
    due = due_of(i)
    begin
      if due.positive? then q.schedule(payload(i, due), at: Time.at(due / 1000.0))
      else q.schedule(payload(i, 0), delay: DELAY / 1000.0)
      end
    rescue Reactis::Interrupted
      $interrupted += 1
      raise if $interrupted > 100
      retry
    end
  end
  many = nil
  if q.respond_to?(:schedule_many)
    many = lambda do |idx|
      q.schedule_many(idx.map do |i|
        due = due_of(i)
        due.positive? ? { payload: payload(i, due), at: Time.at(due / 1000.0) } : { payload: payload(i, 0), delay: DELAY / 1000.0 }
      end)
    end
  end
  timed(one, many)

in ["reactis-rb", "consume"]
  require "reactis"
  out = Out.new(OPTS["out"])
  q = Reactis::Queue.new(OPTS["queue"], url: URL)
  q.stats
  stop = false
  %w[TERM INT].each { |s| trap(s) { stop = true; q.wakeup } }
  puts "READY"
  count = 0
  # fetch 100, the previous batch's acks sent with the next fetch (one
  # round trip), as reactis-py-b.
  jobs = []
  until stop
    jobs = q.fetch(max: 100, timeout: 1, ack: jobs)
    next if jobs.empty?
    recv = now_ms
    jobs.each { |j| out.line(j.payload, recv, j.due_ms) }
    count += jobs.size
    out.flush
  end
  q.ack_many(jobs) unless jobs.empty?
  out.flush
  result(count: count)

in ["reactis-rb", "sub"]
  # The idiomatic loop, Subscriber#each_message (alias each) with a block,
  # and a timeout so that a short count ends it: one C call per batch
  # of up to 512 buffered messages makes the Message objects (frozen
  # Strings, the channel String shared); per message only an index moves
  # and the block is yielded to. RESULT says which path ran ("path").
  require "reactis"
  s = Reactis::Subscriber.new(URL, health_check_interval: 0)
  s.subscribe(OPTS["channel"])
  puts "READY"
  $stdin.gets
  t0 = mono
  got = 0
  s.each_message(timeout: 5) do |_msg|
    got += 1
    break if got >= N
  end
  sec = mono - t0
  result(n: got, seconds: sec, rate: got / sec, path: "each")

else
  warn "rbdrive: #{SYSTEM} does not support #{OP}"
  exit 2
end
