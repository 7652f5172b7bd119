# frozen_string_literal: true

# Pub/sub drain speed of the Ruby gem beside redis-rb (when `require "redis"`
# works; with the hiredis driver when that is installed too).
#
#   ruby -I bindings/ruby/lib bench/ruby_bench.rb [N] [RUNS]   # 1000000, 3
#   QN=20000 sets the number of queue messages of the Queue#work part.
#
# Starts its own redis-server on a free loopback port, with
# --client-output-buffer-limit "pubsub 0 0 0" so the server buffers every
# message. Per run: subscribe, publish N 16-byte messages (pipelined, over a
# raw socket, all replies read, so every message is buffered for the
# subscriber), then time the subscriber draining them. Prints the median of
# RUNS runs per client (and every run), the median of messages per CPU
# second of this process (less sensitive to a busy machine), and the GC time
# per message and major GCs of each drain (GC.total_time, GC.stat).
# RX_REDIS_SERVER names the server.

$LOAD_PATH.unshift(File.expand_path("../bindings/ruby/lib", __dir__))
require "reactis"
require "socket"
require "tmpdir"
require "fileutils"

N = Integer(ARGV[0] || 1_000_000)
RUNS = Integer(ARGV[1] || 3)
CHANNEL = "bench"
PAYLOAD = ("0123456789abcdef" * 1)[0, 16]

def mono = Process.clock_gettime(Process::CLOCK_MONOTONIC)
def cpu = Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID)

def free_port
  s = TCPServer.new("127.0.0.1", 0)
  s.addr[1]
ensure
  s&.close
end

def start_server(dir)
  port = free_port
  bin = ENV["RX_REDIS_SERVER"] || "redis-server"
  pid = Process.spawn(bin, "--port", port.to_s, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                      "--dir", dir, "--client-output-buffer-limit", "pubsub 0 0 0",
                      "--logfile", File.join(dir, "redis.log"), in: File::NULL, out: File::NULL, err: File::NULL)
  deadline = mono + 10
  begin
    TCPSocket.new("127.0.0.1", port).close
  rescue SystemCallError
    raise "redis-server did not start (#{dir}/redis.log)" if mono > deadline
    sleep 0.02
    retry
  end
  [pid, port]
end

# Publishes n messages over one raw connection, pipelined in chunks; returns
# once every reply was read (so every message is in the subscriber's buffer).
# Returns how many subscribers received the last one.
def publish(port, n)
  cmd = "*3\r\n$7\r\nPUBLISH\r\n$#{CHANNEL.bytesize}\r\n#{CHANNEL}\r\n$#{PAYLOAD.bytesize}\r\n#{PAYLOAD}\r\n".b
  chunk = 2000
  receivers = nil
  Socket.tcp("127.0.0.1", port) do |s|
    sent = 0
    while sent < n
      k = [chunk, n - sent].min
      s.write(cmd * k)
      replies = +""
      replies << s.readpartial(65_536) while replies.count("\n") < k
      receivers = replies[/:(\d+)\r\n\z/, 1].to_i
      sent += k
    end
  end
  receivers
end

def median(xs) = xs.sort[xs.size / 2]

# GC time (ns, GC.total_time) and major GC count so far; a drain reports
# the difference per message beside its rate.
def gc_now = [GC.total_time, GC.stat(:major_gc_count)]

def gc_since(g0, n)
  g1 = gc_now
  [(g1[0] - g0[0]).fdiv(n), g1[1] - g0[1]]
end

def fmt(rate) = rate.round.to_s.reverse.scan(/\d{1,3}/).join(",").reverse

# ------------------------------------------------------------ the clients

def reactis_each_message(port)
  sub = Reactis::Subscriber.new("redis://127.0.0.1:#{port}", health_check_interval: 0)
  sub.subscribe(CHANNEL)
  raise "not subscribed" unless publish(port, N) >= 1
  got = 0
  t0 = mono
  c0 = cpu
  g0 = gc_now
  sub.each_message(timeout: 5) do |_m|
    got += 1
    break if got >= N
  end
  sec = mono - t0
  csec = cpu - c0
  raise "reactis each_message: got #{got} of #{N}" unless got == N
  [N / sec, N / csec, *gc_since(g0, N)]
ensure
  sub&.close
end

def reactis_next_message(port)
  sub = Reactis::Subscriber.new("redis://127.0.0.1:#{port}", health_check_interval: 0)
  sub.subscribe(CHANNEL)
  raise "not subscribed" unless publish(port, N) >= 1
  got = 0
  t0 = mono
  c0 = cpu
  g0 = gc_now
  while got < N
    break if sub.next_message(timeout: 5).nil?
    got += 1
  end
  sec = mono - t0
  csec = cpu - c0
  raise "reactis next_message: got #{got} of #{N}" unless got == N
  [N / sec, N / csec, *gc_since(g0, N)]
ensure
  sub&.close
end

# The block form, as redis-rb's: on.message { |channel, message| }.
def reactis_block(port)
  sub = Reactis::Subscriber.new("redis://127.0.0.1:#{port}", health_check_interval: 0)
  got = 0
  t0 = c0 = g0 = nil
  sub.subscribe(CHANNEL) do |on|
    on.subscribe do
      raise "not subscribed" unless publish(port, N) >= 1
      t0 = mono
      c0 = cpu
      g0 = gc_now
    end
    on.message do
      got += 1
      sub.unsubscribe if got >= N
    end
  end
  sec = mono - t0
  csec = cpu - c0
  raise "reactis subscribe block: got #{got} of #{N}" unless got == N
  [N / sec, N / csec, *gc_since(g0, N)]
ensure
  sub&.close
end

REDIS_RB = begin
  require "redis"
  driver = begin
    require "hiredis"
    :hiredis
  rescue LoadError
    :ruby
  end
  "redis-rb #{Redis::VERSION} (#{driver == :hiredis ? "hiredis #{Hiredis::VERSION}" : 'ruby driver'})"
rescue LoadError
  nil
end

def redis_rb(port)
  opts = { host: "127.0.0.1", port: port }
  opts[:driver] = :hiredis if defined?(Hiredis)
  r = Redis.new(**opts)
  got = 0
  t0 = c0 = g0 = nil
  r.subscribe(CHANNEL) do |on|
    on.subscribe do
      raise "not subscribed" unless publish(port, N) >= 1
      t0 = mono
      c0 = cpu
      g0 = gc_now
    end
    on.message do
      got += 1
      r.unsubscribe if got >= N
    end
  end
  sec = mono - t0
  csec = cpu - c0
  raise "redis-rb: got #{got} of #{N}" unless got == N
  [N / sec, N / csec, *gc_since(g0, N)]
ensure
  r&.close
end

# Queue#work with a no-op handler on QN messages already due (scheduled
# with schedule_many before the clock starts).
QN = Integer(ENV.fetch("QN", "20000"))

def reactis_work(port, max)
  q = Reactis::Queue.new("bench-work", url: "redis://127.0.0.1:#{port}")
  QN.times.each_slice(1000) { |s| q.schedule_many(s.map { |i| "payload-#{i}" }) }
  n = 0
  t0 = mono
  c0 = cpu
  q.work(max: max, signals: []) do |_job|
    n += 1
    q.stop if n >= QN
  end
  sec = mono - t0
  csec = cpu - c0
  raise "work: #{n} of #{QN}" unless n == QN && q.stats[:acked] >= QN
  q.purge_dead
  [QN / sec, QN / csec]
ensure
  q&.close
end

# ------------------------------------------------------------ main

dir = Dir.mktmpdir("reactis-rb-bench")
pid, port = start_server(dir)
begin
  clients = {
    "reactis #{Reactis::VERSION} Subscriber#each_message" => method(:reactis_each_message),
    "reactis #{Reactis::VERSION} Subscriber#next_message" => method(:reactis_next_message),
    "reactis #{Reactis::VERSION} subscribe block (on.message)" => method(:reactis_block)
  }
  clients["#{REDIS_RB} subscribe block"] = method(:redis_rb) if REDIS_RB
  puts "pub/sub drain, #{N} buffered #{PAYLOAD.bytesize}-byte messages, median of #{RUNS} (#{RUBY_DESCRIPTION})"
  puts "(redis-rb not installed: require \"redis\" failed)" unless REDIS_RB
  # Runs interleaved (one of each client per round), so that a change in
  # the machine's load during the benchmark falls on every client alike.
  runs = Hash.new { |h, k| h[k] = [] }
  RUNS.times do
    clients.each do |name, fn|
      GC.start
      runs[name] << fn.call(port)
    end
  end
  peer = REDIS_RB && runs["#{REDIS_RB} subscribe block"]
  clients.each_key do |name|
    wall = runs[name].map(&:first)
    cpus = runs[name].map { |r| r[1] }
    vs = if peer && !name.start_with?("redis-rb")
           format("; %.2fx redis-rb (per CPU second %.2fx; goal 2.5x)", median(wall) / median(peer.map(&:first)),
                  median(cpus) / median(peer.map { |r| r[1] }))
         else
           ""
         end
    puts format("  %-52s %11s msg/s (runs %s); per CPU second %s%s", name, fmt(median(wall)),
                wall.map { |r| fmt(r) }.join(" "), fmt(median(cpus)), vs)
    puts format("  %-52s GC %.0f ns per message (median), %s major GCs per run", "",
                median(runs[name].map { |r| r[2] }), runs[name].map { |r| r[3] }.join("/"))
  end
  puts "queue drain, Queue#work with a no-op handler, #{QN} due messages, median of #{RUNS}"
  { "max: nil (adaptive batch, ack_many)" => nil, "max: 1 (one fetch and one ack per job)" => 1 }.each do |name, max|
    runs = Array.new(RUNS) { reactis_work(port, max) }
    wall = runs.map(&:first)
    puts format("  %-52s %11s msg/s (runs %s); per CPU second %s", "reactis #{name}", fmt(median(wall)),
                wall.map { |r| fmt(r) }.join(" "), fmt(median(runs.map(&:last))))
  end
ensure
  Process.kill("TERM", pid)
  Process.wait(pid)
  FileUtils.rm_rf(dir)
end
