# frozen_string_literal: true

module Reactis
  # One connection to one Redis server, for commands and publishing.
  #
  #   client = Reactis::Client.new("redis://localhost:6379/0")
  #   client.publish("chat:room-1", "hello")          # => receivers
  #   client.command("SET", "greeting", "hi", "EX", 60)
  #   client.command("GET", "greeting")               # => "hi" (ASCII-8BIT)
  #
  # The URL is redis://[[user]:password@]host[:port][/db][?option=value...],
  # rediss://... for TLS (verified by default) or unix:///path/to/sock.
  # Keyword options are the URL's query options (timeout: 5,
  # connect_timeout: 5, client_name: "worker", ssl_cert_reqs: "none", ...);
  # an unknown one raises Reactis::URLError.
  #
  # Replies: bulk strings are binary Strings (ASCII-8BIT) unless
  # encoding: is given, status replies ("OK") UTF-8 Strings, integers
  # Integers, nil nil, arrays Arrays; an error reply raises a
  # Reactis::ReplyError subclass (inside an array, from EXEC, it is returned
  # as an exception instance).
  #
  # The client connects on the first command and reconnects on the next
  # command after a lost link; the library never sends a command twice.
  # Commands from several threads are serialized; each releases the GVL while
  # it waits, so other threads run, and Ctrl-C, SIGTERM and Thread#kill
  # interrupt it at once.
  class Client
    include HandleOwner

    def initialize(url = "redis://localhost:6379", encoding: nil, **options)
      @url = Internal.check_url(url)
      @options = options
      handle = new_handle
      @description = handle.describe
      @encoding = Internal.encoding(encoding)
      @lock = Mutex.new
      init_handle(handle)
    end

    # The URL with any password replaced by "***".
    def url
      @description
    end

    def connected?
      !@closing && Internal.query(@handle, false, &:is_connected)
    end

    # Connects now (closing any current link): TCP/unix/TLS, AUTH, SELECT,
    # CLIENT SETNAME. Raises Reactis::ConnectionError and its subclasses.
    def connect
      locked { |h| check(h.connect, "connect") }
      self
    end

    # Runs one command and returns its reply. Arguments are Strings (sent as
    # their bytes), Symbols or numbers.
    def command(*args)
      raise ArgumentError, "command needs at least the command name" if args.empty?
      argv = args.map { |a| Internal.arg(a) }
      rc, value = locked { |h| h.call(argv) }
      raise Internal.interrupted(rc, "command #{args.first}") unless rc == Cimpl::OK
      Internal.recode(value, @encoding)
    end
    alias call command

    # Publishes data on channel (Strings of any encoding: their bytes are
    # sent); returns the number of subscribers that received it.
    def publish(channel, data)
      ch = Internal.bytes(channel, "channel")
      payload = Internal.bytes(data, "data")
      rc, receivers = locked { |h| h.publish(ch, payload) }
      raise Internal.interrupted(rc, "publish") unless rc == Cimpl::OK
      receivers
    end

    # True when the server answers PONG.
    def ping
      command("PING") == "PONG"
    end

    # See Reactis.enable_keyspace_events.
    def enable_keyspace_events(flags = "Ex")
      raise TypeError, "flags must be a String, not #{flags.class}" unless flags.is_a?(String)
      effective = locked { |h| h.notify_ensure(flags) }
      Reactis.logger.debug { "notify-keyspace-events on #{@description}: #{effective}" }
      effective
    end

    # Makes a command waiting in another thread return at once (it raises
    # Reactis::Interrupted). Safe from any thread and from trap handlers.
    def wakeup
      Internal.wake(@handle)
      nil
    end

    def inspect
      state = if @closing then "closed"
              elsif connected? then "connected"
              else "not connected"
              end
      "#<#{self.class.name} #{@description} (#{state})>"
    end
    alias to_s inspect

    private

    def new_handle
      handle = Cimpl::Conn.new(@url)
      Internal.apply_options(handle, @options)
      handle
    end

    # Runs the block on the handle, one thread at a time. A call interrupted
    # by Ruby (a signal, Thread#kill, Timeout) or woken up leaves the link in
    # an unknown state (a reply may still come, or never, as for BLPOP 0): the
    # handle is replaced, so the next command connects anew, as redis-rb
    # disconnects after an interrupted command.
    def locked
      @lock.synchronize do
        with_handle do |h|
          clean = false
          begin
            result = yield h
            rc = result.is_a?(Array) ? result.first : result
            clean = !(rc == Cimpl::WOKEN || rc == Cimpl::EINTR)
            result
          rescue Error
            clean = true
            raise
          ensure
            replace_handle(h) unless clean
          end
        end
      end
    end

    def replace_handle(old)
      return if @closing || !@handle.equal?(old)
      @handle = new_handle
      Cimpl.dispose(old)
    rescue StandardError
      nil
    end

    def check(rc, what)
      raise Internal.interrupted(rc, what) if rc.is_a?(Integer) && rc != Cimpl::OK
      rc
    end
  end
end
