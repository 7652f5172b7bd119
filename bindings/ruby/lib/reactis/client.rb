# frozen_string_literal: true

module Reactis
  # One node of a Redis Cluster, as Client#nodes lists it: host (as the
  # cluster announces it), port (the TLS port for rediss://), id (40 hex
  # digits, "" when unknown), master and failed (booleans), ranges (the
  # inclusive slot ranges [[first, last], ...] a master serves; [] for a
  # replica).
  ClusterNode = Struct.new(:host, :port, :id, :master, :failed, :ranges) do
    def master?
      master
    end

    def replica?
      !master
    end

    def failed?
      failed
    end

    def role
      master ? :master : :replica
    end

    # redis://host:port of this node alone (no credentials), e.g. for a
    # per-node Client.
    def url
      "redis://#{host.include?(':') ? "[#{host}]" : host}:#{port}"
    end
  end

  # One connection to one Redis server, or to a Redis Cluster, for commands
  # and publishing.
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
  #
  # Redis Cluster: a URL with several hosts (redis://h1:7000,h2:7001) or the
  # option cluster=yes makes a cluster client, exactly as for Subscriber and
  # Queue. It learns the topology from the seeds, sends each command to the
  # master of its key's hash slot (the first argument, except for EVAL,
  # XREAD... which the core knows), follows MOVED and ASK, and retries what
  # the cluster refused without running it (TRYAGAIN, CLUSTERDOWN, a master
  # being failed over) within the command timeout. Keyless commands (PING,
  # PUBLISH, INFO...) go to any master; multi-key commands need their keys in
  # one slot (a hash tag). #nodes, #stats and #keyslot are for cluster
  # users. A refusal that outlasts the timeout, or too many redirections,
  # raises Reactis::ClusterError.
  #
  #   cluster = Reactis::Client.new("redis://10.0.0.1:7000,10.0.0.2:7000")
  #   cluster.command("SET", "{user:1}.name", "Ada")  # on the slot's master
  #   cluster.nodes(:master).map { |n| [n.port, n.ranges] }
  class Client
    include HandleOwner

    # The hash slot (0..16383) of key, as CLUSTER KEYSLOT computes it.
    def self.keyslot(key)
      Reactis.keyslot(key)
    end

    def initialize(url = "redis://localhost:6379", encoding: nil, **options)
      @url = Internal.check_url(url)
      # The core's own test, the one Subscriber and Queue use.
      @cluster = Cimpl.is_cluster_url(@url)
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

    # True while a link is established (a cluster client: the topology is
    # known and a node link is open, or a command is running).
    def connected?
      return false if @closing
      return Internal.query(@handle, false, &:is_connected) unless @cluster
      # The cluster handle's node table may be reallocated by a command
      # running in another thread: look only when no call is under way.
      return true unless @lock.try_lock
      begin
        Internal.query(@handle, false, &:is_connected)
      ensure
        @lock.unlock
      end
    end

    # True for a Redis Cluster client.
    def cluster?
      @cluster
    end

    # Connects now (closing any current link): TCP/unix/TLS, AUTH, SELECT,
    # CLIENT SETNAME; a cluster client instead (re)loads the topology from
    # the first known node or seed that answers, keeping its node links
    # (each node is connected on first use). Raises Reactis::ConnectionError
    # and its subclasses.
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
    # sent); returns the number of subscribers that received it (in a
    # cluster: those connected to the node that took the message).
    def publish(channel, data)
      ch = Internal.bytes(channel, "channel")
      payload = Internal.bytes(data, "data")
      # In a cluster any master takes it and forwards it to every node.
      rc, receivers = locked do |h|
        @cluster ? h.call(["PUBLISH", ch, payload]) : h.publish(ch, payload)
      end
      raise Internal.interrupted(rc, "publish") unless rc == Cimpl::OK
      receivers
    end

    # True when the server answers PONG.
    def ping
      command("PING") == "PONG"
    end

    # See Reactis.enable_keyspace_events. A cluster client sets the flags on
    # every master and replica (notifications are per node, and a promoted
    # replica must keep them) and returns the first master's; the first node
    # that failed raises, naming the node, after the others were tried.
    def enable_keyspace_events(flags = "Ex")
      raise TypeError, "flags must be a String, not #{flags.class}" unless flags.is_a?(String)
      rc, effective = locked do |h|
        e = h.notify_ensure(flags)
        # nil: a cluster call was woken up or interrupted.
        e.nil? ? [h.err.nonzero? || Cimpl::WOKEN, nil] : [Cimpl::OK, e]
      end
      raise Internal.interrupted(rc, "enable_keyspace_events") unless rc == Cimpl::OK
      Reactis.logger.debug { "notify-keyspace-events on #{@description}: #{effective}" }
      effective
    end

    # The hash slot of key; see Reactis.keyslot.
    def keyslot(key)
      Reactis.keyslot(key)
    end

    NODE_ROLES = { nil => Cimpl::CLUSTER_MASTERS | Cimpl::CLUSTER_REPLICAS,
                   master: Cimpl::CLUSTER_MASTERS, replica: Cimpl::CLUSTER_REPLICAS }.freeze
    private_constant :NODE_ROLES

    # The cluster's nodes as the client knows them (the topology is loaded
    # first if needed), as Reactis::ClusterNode: masters first, ordered by
    # their first slot, then replicas. role :master or :replica keeps only
    # those. Cluster clients only (else Reactis::StateError).
    def nodes(role = nil)
      which = NODE_ROLES.fetch(role.nil? ? nil : role.to_sym) do
        raise ArgumentError, "role must be :master, :replica or nil, not #{role.inspect}"
      end
      need_cluster("nodes")
      want = 64
      loop do
        rc, total, items = locked do |h|
          total, items = h.nodes(which, want)
          [total.negative? ? Cimpl::WOKEN : Cimpl::OK, total, items]
        end
        raise Internal.interrupted(rc, "nodes") unless rc == Cimpl::OK
        return items.map { |a| ClusterNode.new(*a) } if total <= want
        want = total # the topology grew meanwhile: ask for all of it
      end
    end

    # Redirections, retries and topology loads so far, a Hash with the keys
    # :moved, :ask, :retries, :refreshes (cluster clients only; no I/O).
    def stats
      need_cluster("stats")
      # No I/O, and not through #locked, which would read moved == 2 as a
      # status.
      moved, ask, retries, refreshes = @lock.synchronize { with_handle(&:stats) }
      { moved: moved, ask: ask, retries: retries, refreshes: refreshes }
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
      "#<#{self.class.name} #{@cluster ? 'cluster ' : ''}#{@description} (#{state})>"
    end
    alias to_s inspect

    private

    def new_handle
      handle = @cluster ? Cimpl::Cluster.new(@url) : Cimpl::Conn.new(@url)
      Internal.apply_options(handle, @options)
      handle
    end

    def dispose(handle)
      @cluster ? Cimpl.cluster_dispose(handle) : Cimpl.dispose(handle)
    end

    # HandleOwner's, with the cluster handle's own disposal.
    def release_handle
      h = @handle
      @handle = nil
      dispose(h) if h
    end

    def need_cluster(what)
      return if @cluster
      raise Internal.state_error("#{what} needs a cluster client (a URL with several hosts " \
                                 "or cluster=yes)")
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
      dispose(old)
    rescue StandardError
      nil
    end

    def check(rc, what)
      raise Internal.interrupted(rc, what) if rc.is_a?(Integer) && rc != Cimpl::OK
      rc
    end
  end
end
