# frozen_string_literal: true

# Shared setup of the Ruby tests: real redis-server processes on free
# loopback ports, each in its own temporary directory, always stopped; a tiny
# RESP client independent of reactis; a time bound on every test.
#
# The package under test is bindings/ruby/lib with the extension built by
# `rake compile` (bindings/ruby/lib/reactis/cimpl.so), unless
# REACTIS_TEST_INSTALLED=1 (then whatever `require "reactis"` finds).
# The server binary is RX_REDIS_SERVER or redis-server on PATH.

ROOT = File.expand_path("../..", __dir__)
RUBY_LIB = File.join(ROOT, "bindings", "ruby", "lib")
$LOAD_PATH.unshift(RUBY_LIB) unless ENV["REACTIS_TEST_INSTALLED"] == "1"

require "minitest/autorun"
require "socket"
require "tmpdir"
require "fileutils"
require "timeout"
require "rbconfig"
require "stringio"
require "reactis"

Reactis.logger.level = ENV.fetch("REACTIS_TEST_LOG", "FATAL").upcase

# ------------------------------------------------------------ a tiny RESP client

module RawRedis
  module_function

  def encode(args)
    out = +"*#{args.size}\r\n"
    args.each do |a|
      a = a.to_s.b
      out << "$#{a.bytesize}\r\n" << a << "\r\n"
    end
    out.b
  end

  def read(io)
    line = io.gets("\r\n") or raise IOError, "closed"
    line = line.chomp("\r\n")
    case line[0]
    when "+" then line[1..]
    when "-" then RuntimeError.new(line[1..])
    when ":" then Integer(line[1..])
    when "$"
      n = Integer(line[1..])
      return nil if n.negative?
      data = io.read(n + 2)
      data[0, n]
    when "*"
      n = Integer(line[1..])
      n.negative? ? nil : Array.new(n) { read(io) }
    else raise "bad RESP: #{line.inspect}"
    end
  end

  # One command over a plain socket.
  def command(port, *args, password: nil, timeout: 5)
    Socket.tcp("127.0.0.1", port, connect_timeout: timeout) do |s|
      if password
        s.write(encode(["AUTH", password]))
        read(s)
      end
      s.write(encode(args))
      Timeout.timeout(timeout) { read(s) }
    end
  end
end

# ------------------------------------------------------------ servers

class RedisServer
  attr_reader :port, :dir, :password

  # Every server still running when the tests end is stopped. destroy
  # removes the server from ALL, so iterate over a copy (iterating ALL itself
  # skipped every other server and left them running). minitest/autorun runs
  # the tests in an at_exit hook registered before this one, so this hook runs
  # first; after_run is the one that comes after the tests.
  ALL = []
  cleanup = -> { ALL.dup.each(&:destroy) }
  Minitest.after_run(&cleanup)
  at_exit(&cleanup)

  def self.binary
    ENV["RX_REDIS_SERVER"] || begin
      path = ENV.fetch("PATH", "").split(File::PATH_SEPARATOR).map { |d| File.join(d, "redis-server") }
                .find { |f| File.executable?(f) }
      path || raise("redis-server not found (set RX_REDIS_SERVER)")
    end
  end

  def self.free_port
    s = TCPServer.new("127.0.0.1", 0)
    s.addr[1]
  ensure
    s&.close
  end

  def initialize(args = [], password: nil)
    @args = args
    @password = password
    @dir = Dir.mktmpdir("reactis-rb-redis")
    @port = nil
    @pid = nil
    ALL << self
  end

  def url(db = 0)
    auth = @password ? ":#{@password}@" : ""
    "redis://#{auth}127.0.0.1:#{@port}/#{db}"
  end

  def start(port: nil)
    5.times do
      @port = port || @port || self.class.free_port
      cmd = [self.class.binary, "--port", @port.to_s, "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", @dir, "--logfile", File.join(@dir, "redis.log"),
             "--daemonize", "no"]
      cmd += ["--requirepass", @password] if @password
      cmd += @args
      @pid = Process.spawn(*cmd, in: File::NULL, out: File::NULL, err: File::NULL)
      return self if wait_ready
      stop
      if port
        sleep 0.2
      else
        @port = nil
      end
    end
    raise "redis-server did not start; see #{File.join(@dir, 'redis.log')}"
  end

  def wait_ready(timeout = 10)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    while Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
      return false if Process.waitpid(@pid, Process::WNOHANG)
      begin
        return true if command("PING") == "PONG"
      rescue SystemCallError, IOError, Timeout::Error
        nil
      end
      sleep 0.02
    end
    false
  end

  def running?
    !@pid.nil?
  end

  def stop
    return unless @pid
    begin
      Process.kill("TERM", @pid)
      Timeout.timeout(10) { Process.wait(@pid) }
    rescue Timeout::Error
      Process.kill("KILL", @pid)
      Process.wait(@pid)
    rescue Errno::ESRCH, Errno::ECHILD
      nil
    end
    @pid = nil
  end

  def kill
    return unless @pid
    Process.kill("KILL", @pid)
    Process.wait(@pid)
  rescue Errno::ESRCH, Errno::ECHILD
    nil
  ensure
    @pid = nil
  end

  def restart(downtime: 0)
    port = @port
    stop
    sleep downtime if downtime.positive?
    start(port: port)
  end

  def destroy
    stop
    FileUtils.rm_rf(@dir)
    ALL.delete(self)
  end

  def command(*args)
    RawRedis.command(@port, *args, password: @password)
  end
end

# ------------------------------------------------------------ test base

class ReactisTest < Minitest::Test
  # Every test is bounded in time: Timeout works through Thread#raise, which
  # the extension's unblocking function honours.
  TEST_TIMEOUT = Integer(ENV.fetch("REACTIS_TEST_TIMEOUT", "60"))

  def run(*)
    Timeout.timeout(TEST_TIMEOUT) { super }
  end

  def setup
    @servers = []
    @closers = []
  end

  def teardown
    @closers.reverse_each do |c|
      c.close
    rescue StandardError
      nil
    end
    @servers.each(&:destroy)
  end

  def server(args = [], password: nil)
    s = RedisServer.new(args, password: password).start
    @servers << s
    s
  end

  # Closes obj at teardown.
  def closing(obj)
    @closers << obj
    obj
  end

  def monotonic
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end

  # Waits until the block is true, up to timeout seconds.
  def wait_until(timeout = 5, what = "condition")
    deadline = monotonic + timeout
    until yield
      flunk("timed out waiting for #{what}") if monotonic > deadline
      sleep 0.01
    end
  end

  # Runs Ruby code in a child process with the package on its load path;
  # yields the pid and a reader of its stdout; returns the exit status.
  def ruby_child(code, env: {})
    rd, wr = IO.pipe
    args = [RbConfig.ruby]
    args += ["-I", RUBY_LIB] unless ENV["REACTIS_TEST_INSTALLED"] == "1"
    args += ["-e", code]
    pid = Process.spawn(env, *args, out: wr, err: $stderr, in: File::NULL)
    wr.close
    begin
      yield pid, rd
    ensure
      begin
        unless Process.waitpid(pid, Process::WNOHANG)
          Process.kill("KILL", pid)
          Process.wait(pid)
        end
      rescue Errno::ESRCH, Errno::ECHILD
        nil
      end
    end
  ensure
    rd&.close
  end

  # Reads one line from io within timeout seconds.
  def read_line(io, timeout = 10)
    Timeout.timeout(timeout) { io.gets }
  end

  def wait_exit(pid, timeout = 10)
    Timeout.timeout(timeout) { Process.wait2(pid)[1] }
  end
end
