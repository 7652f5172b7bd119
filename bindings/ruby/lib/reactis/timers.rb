# frozen_string_literal: true

module Reactis
  # Resettable timers with shadow data (the C core's timer.h), on the
  # delayed queue "timer:NAME":
  #
  #   timers = Reactis::Timers.new("heartbeats", url: "redis://localhost:6379/0")
  #   timers.touch("device:100002", 30, payload)     # each heartbeat: 30 s more
  #   timers.stop("device:100002")                   # => true when it was armed
  #
  #   timers.watch { |id, data| puts "#{id} offline, last payload #{data}" }
  #
  # Touching arms a timer or moves its deadline (one round trip); when a
  # deadline passes without a touch the timer fires and a watcher gets its
  # id and last data. Firing is at least once and on time: a deadline that
  # passed while no watcher ran fires when one starts, and a watcher that
  # dies has its firings redelivered after the visibility timeout. A timer
  # touched before its deadline never fires for it. Edge cases (a touch
  # while a firing is in flight, a redelivery superseded by a touch) are in
  # docs/timers.md.
  #
  # Options as for Queue: visibility_timeout, max_attempts, backoff_base,
  # backoff_max, block_cap (seconds), max_payload, consumer, group,
  # encoding (nil: binary), and the connection options.
  class Timers
    include HandleOwner

    # One firing: a Queue::Job of the timers' queue, with timer names.
    class Fired < Queue::Job
      alias data payload
      alias deadline_ms due_ms
      alias fired_ms delivered_ms

      def inspect
        "#<Reactis::Timers::Fired #{id.inspect} attempt=#{attempt} #{payload.bytesize} bytes>"
      end
      alias to_s inspect
    end

    attr_reader :name

    def initialize(name, url: nil, encoding: nil, **options)
      name = name.to_s if name.is_a?(Symbol)
      raise TypeError, "timer set name must be a String, not #{name.class}" unless name.is_a?(String)
      url ||= ENV.fetch("REDIS_URL", "redis://localhost:6379")
      @name = name.dup.freeze
      @url = Internal.check_url(url)
      @encoding = Internal.encoding(encoding)
      @stop = false
      handle = Cimpl::Timers.new(@url, @name)
      apply(handle, options)
      @description = Cimpl.url_redact(@url)
      init_handle(handle)
    end

    def url
      @description
    end

    def inspect
      "#<#{self.class.name} #{@name} on #{@description}#{@closing ? ' (closed)' : ''}>"
    end
    alias to_s inspect

    # ---------------------------------------------------------------- arming

    # Arms timer id to fire in ttl seconds (0: at once), or moves its
    # deadline there, and sets its shadow data (a String), handed over when
    # it fires. true when the timer was not armed (a new one).
    def touch(id, ttl, data = "")
      tid, ms, bytes = timer_id(id), Internal.ms(ttl, "ttl"), Internal.bytes(data, "data")
      rc, armed, _due = settled { |h| h.touch(tid, ms, 0, bytes) }
      raise Internal.interrupted(rc, "touch") unless rc == Cimpl::OK
      armed == 1
    end

    # As #touch, with a deadline (a Time or epoch seconds).
    def touch_at(id, at, data = "")
      epoch = at.is_a?(Time) ? at.to_r : at
      raise TypeError, "at must be a Time or epoch seconds" unless epoch.is_a?(Numeric)
      tid, bytes = timer_id(id), Internal.bytes(data, "data")
      rc, armed, _due = settled { |h| h.touch(tid, (epoch * 1000).round, Cimpl::SCHED_AT, bytes) }
      raise Internal.interrupted(rc, "touch_at") unless rc == Cimpl::OK
      armed == 1
    end

    # Touches many timers in few round trips: a Hash {id => data} or pairs
    # [id, data] with ttl:, or triples [id, ttl, data]. Returns how many were
    # newly armed.
    def touch_many(timers, ttl: nil)
      with_handle do |h|
        h.batch_clear
        begin
          timers.each do |item|
            item = Array(item)
            tid, t, data = case item.size
                           when 2
                             raise ArgumentError, "give ttl: for [id, data] pairs" if ttl.nil?
                             [item[0], ttl, item[1]]
                           when 3 then item
                           else raise ArgumentError, "expected [id, data] or [id, ttl, data], not #{item.inspect}"
                           end
            h.batch_add(timer_id(tid), Internal.ms(t, "ttl"), Internal.bytes(data, "data"))
          end
          n = h.batch_count
          next 0 if n.zero?
          rc = nil
          RETRIES.times { break if (rc = h.batch_send) == Cimpl::OK }
          raise Internal.interrupted(rc, "touch_many") unless rc == Cimpl::OK
          (0...n).count { |i| h.batch_result(i)[1] == 1 }
        ensure
          h.batch_clear
        end
      end
    end

    # Disarms timer id: true when it was armed, false when it was not
    # (unknown, stopped, or fired already).
    def stop(id)
      tid = timer_id(id)
      rc = settled { |h| h.stop(tid) }
      return true if rc == Cimpl::OK
      return false if rc == Cimpl::NOMATCH
      raise Internal.interrupted(rc, "stop")
    end

    # ---------------------------------------------------------------- firing

    # Up to max fired timers (Fired), waiting up to timeout seconds (0: do
    # not wait, nil: until one fires or #wakeup). [] when none.
    def fetch(max: 1, timeout: 0)
      raise ArgumentError, "max must be an Integer in 1..1000" unless max.is_a?(Integer) && max.between?(1, 1000)
      deadline = timeout && Internal.monotonic + timeout
      loop do
        if @stop
          @stop = false
          return []
        end
        return [] if @closing
        ms = if deadline
               [[((deadline - Internal.monotonic) * 1000).ceil, 0].max, Internal::SLICE_MS].min
             else
               Internal::SLICE_MS
             end
        rc, jobs = with_handle { |h| h.watch(ms, max) }
        return jobs.map { |j| Fired.new(self, j, @encoding) } if rc == Cimpl::OK && !jobs.empty?
        return [] if deadline && Internal.monotonic >= deadline
      end
    end

    # Yields (id, data, fired) for every timer that fires and returns how
    # many were handled: acked when the block returns; retried with backoff
    # when it raises a StandardError (logged; after max_attempts it goes to
    # the dead letters). Ends on #wakeup or #close, after timeout seconds
    # without a firing, or after max_fired. Without a block, an Enumerator
    # of Fired (each to be acked).
    def watch(timeout: nil, batch: 100, max_fired: nil, &block)
      return enum_for(:each_fired, timeout: timeout, batch: batch) unless block
      done = 0
      pending = []
      begin
        while max_fired.nil? || done < max_fired
          want = max_fired ? [batch, max_fired - done].min : batch
          pending = fetch(max: want, timeout: timeout)
          break if pending.empty?
          until pending.empty?
            f = pending.first
            begin
              block.call(f.id, f.payload, f)
              pending.shift
              ack(f)
            rescue StandardError => e
              pending.shift
              Reactis.logger.error { "timers #{@name}: handler failed for #{f.id.inspect}: #{e.class}: #{e.message}" }
              retry_firing(f, error: e)
            end
            done += 1
          end
        end
      ensure
        give_back(pending)
      end
      done
    end

    # Yields each Fired as it comes (to be acked); ends as #watch does.
    def each_fired(timeout: nil, batch: 1)
      return enum_for(:each_fired, timeout: timeout, batch: batch) unless block_given?
      pending = []
      begin
        loop do
          pending = fetch(max: batch, timeout: timeout)
          break if pending.empty?
          yield pending.shift until pending.empty?
        end
      ensure
        give_back(pending)
      end
      self
    end

    # Makes a waiting #fetch or #watch return at once. Safe from any thread
    # and from trap handlers.
    def wakeup
      @stop = true
      Internal.wake(@handle)
      nil
    end

    # ---------------------------------------------------------------- settling

    def ack(fired)
      tok = token(fired)
      rc = settled { |h| h.ack(tok) }
      raise Internal.interrupted(rc, "ack") unless rc == Cimpl::OK
      true
    end

    # The handler failed: the firing comes again after delay seconds (nil:
    # backoff), unless the timer is touched meanwhile. :retry or :dead.
    def retry_firing(fired, delay: nil, error: nil)
      tok = token(fired)
      delay_ms = delay.nil? ? -1 : Internal.ms(delay, "delay")
      text = error_text(error)
      rc, dead = settled { |h| h.retry(tok, delay_ms, text) }
      raise Internal.interrupted(rc, "retry") unless rc == Cimpl::OK
      dead == 1 ? :dead : :retry
    end

    # For Queue::Job#retry! (Fired inherits it).
    def retry(fired, delay: nil, error: nil)
      retry_firing(fired, delay: delay, error: error)
    end

    def fail(fired, error = nil)
      tok = token(fired)
      text = error_text(error)
      rc = settled { |h| h.fail(tok, text) }
      raise Internal.interrupted(rc, "fail") unless rc == Cimpl::OK
      true
    end

    def extend_lease(fired, seconds = nil)
      tok = token(fired)
      ms = seconds.nil? ? 0 : Internal.ms(seconds, "seconds")
      rc = settled { |h| h.extend(tok, ms) }
      raise Internal.interrupted(rc, "extend_lease") unless rc == Cimpl::OK
      true
    end

    # The timers' queue counters (:scheduled is the number of armed timers).
    def stats
      rc, stats = settled(&:stats)
      raise Internal.interrupted(rc, "stats") unless rc == Cimpl::OK
      stats
    end

    private

    def apply(handle, options)
      conn = {}
      options.each do |k, v|
        next if v.nil?
        if Queue::MS_OPTIONS.key?(k)
          handle.set_option(Queue::MS_OPTIONS[k], Internal.ms(v, k.to_s).to_s)
        else
          conn[k] = v
        end
      end
      Internal.apply_options(handle, conn)
    end

    def timer_id(id)
      id = Internal.bytes(id, "id")
      raise ArgumentError, "a timer id must be 1..256 bytes" if id.empty? || id.bytesize > 256
      id
    end

    def token(fired)
      tok = fired.is_a?(Queue::Job) ? fired.token : fired
      raise TypeError, "expected a Reactis::Timers::Fired or its token, not #{fired.class}" unless tok.is_a?(String)
      tok
    end

    def error_text(error)
      case error
      when nil then nil
      when Exception then "#{error.class}: #{error.message}"
      else error.to_s
      end
    end

    def give_back(fired)
      fired.each do |f|
        retry_firing(f, delay: 0, error: "the watcher stopped before this firing")
      rescue StandardError => e
        Reactis.logger.warn { "timers #{@name}: could not give #{f.id.inspect} back (#{e.message})" }
      end
    end
  end

  class << self
    # true for the one caller that claims (name, id) first, false for every
    # other until ttl seconds have passed: SET rx:claim:{name}:id NX PX. name:
    # 1..200 bytes without braces. url_or_client: a Client or a URL (a
    # connection is opened for the call, with options).
    def claim_once(url_or_client, name, id, ttl, **options)
      ttl_ms = Internal.ms(ttl, "ttl")
      raise ArgumentError, "ttl must be at least 0.001 seconds" if ttl_ms < 1
      n = Internal.bytes(name, "name")
      i = Internal.bytes(id, "id")
      if url_or_client.is_a?(Client)
        raise ArgumentError, "options are only accepted with a URL" unless options.empty?
        return url_or_client.__send__(:claim, n, i, ttl_ms)
      end
      client = Client.new(Internal.check_url(url_or_client || ENV.fetch("REDIS_URL", "redis://localhost:6379")),
                          **options)
      begin
        client.__send__(:claim, n, i, ttl_ms)
      ensure
        client.close
      end
    end
  end

  class Client
    private

    # Reactis.claim_once on this connection.
    def claim(name, id, ttl_ms)
      rc = won = nil
      Timers::RETRIES.times do
        rc, won = locked { |h| Cimpl.claim_once(h, name, id, ttl_ms) }
        break unless rc == Cimpl::EINTR # not run: an interrupt was pending
      end
      raise Internal.interrupted(rc, "claim_once") unless rc == Cimpl::OK
      won == 1
    end
  end
end
