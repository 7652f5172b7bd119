# frozen_string_literal: true

module Reactis
  # Subscribes to channels, patterns and shard channels, and keeps them.
  #
  #   sub = Reactis::Subscriber.new("redis://localhost:6379/0")
  #   sub.psubscribe("__keyevent@*__:expired") do |on|   # as in redis-rb
  #     on.pmessage { |pattern, channel, message| ... }
  #     on.gap      { |gap| ... }   # reconnected: messages may have been missed
  #   end
  #
  #   sub.subscribe("chat:room-1")
  #   sub.each_message { |msg| ... }          # Enumerable; enum_for without a block
  #
  # When the link fails the C core reconnects with exponential backoff and
  # jitter, replays every subscription, and then delivers a :gap Message
  # saying which window may have been missed (pub/sub is at-most-once).
  # While idle it sends PING every health_check_interval seconds and drops a
  # link that does not answer within health_check_timeout, so a half-open
  # connection is detected.
  #
  # Options (nil keeps the core's default): health_check_interval (seconds,
  # 0 = off), health_check_timeout, reconnect_min and reconnect_max (backoff
  # bounds in seconds), reconnect_max_attempts (0 = forever), encoding (nil:
  # binary Strings), batch_size, and every connection option of Client.
  #
  # One thread reads a subscriber. #wakeup, #stop and #close may be called
  # from any thread or from a trap handler. Waiting releases the GVL, so other
  # threads run; Ctrl-C, SIGTERM and Thread#kill interrupt it at once.
  class Subscriber
    include HandleOwner
    include Enumerable

    EMPTY = [].freeze
    private_constant :EMPTY

    # The handlers of the block form of #subscribe and friends, named as in
    # redis-rb: on.message, on.pmessage, on.smessage, on.subscribe,
    # on.psubscribe, on.ssubscribe, on.unsubscribe, on.punsubscribe,
    # on.sunsubscribe, plus on.gap.
    class Handlers
      NAMES = %i[message pmessage smessage gap subscribe psubscribe ssubscribe
                 unsubscribe punsubscribe sunsubscribe].freeze

      def initialize
        @blocks = {}
      end

      NAMES.each do |name|
        define_method(name) do |&block|
          raise ArgumentError, "on.#{name} needs a block" unless block
          @blocks[name] = block
          self
        end
      end

      # Internal: calls the handler for name, if any.
      def call(name, *args)
        b = @blocks[name]
        b&.call(*args)
      end

      def handles?(name)
        @blocks.key?(name)
      end

      # Internal: the handler for name, or nil.
      def [](name)
        @blocks[name]
      end
    end

    def initialize(url = "redis://localhost:6379", health_check_interval: nil,
                   health_check_timeout: nil, reconnect_min: nil, reconnect_max: nil,
                   reconnect_max_attempts: nil, encoding: nil, batch_size: 512, **options)
      unless batch_size.is_a?(Integer) && batch_size.between?(1, 65_536)
        raise ArgumentError, "batch_size must be an Integer in 1..65536"
      end
      handle = Cimpl::Sub.new(Internal.check_url(url))
      Internal.apply_options(handle, {
        health_check_interval: health_check_interval,
        health_check_timeout: health_check_timeout,
        reconnect_min: reconnect_min, reconnect_max: reconnect_max,
        reconnect_max_attempts: reconnect_max_attempts
      }.merge(options))
      @batch = batch_size
      @encoding = Internal.encoding(encoding)
      # Read ahead: the Messages not delivered yet are batch[@pos..] of the
      # current batch (see Cimpl.sub_drain), which is @buf, or, while @lent,
      # the batch a reading loop holds itself (see #lend). @gen changes
      # whenever the current batch does. @cache keeps the last channel and
      # pattern String.
      @buf = EMPTY
      @pos = 0
      @lent = false
      @weak = ObjectSpace::WeakMap.new
      @gen = 0
      @cache = [nil, nil]
      @changed = false
      @stop = false
      @reader = nil
      @description = Cimpl.url_redact(url)
      init_handle(handle)
    end

    # ---------------------------------------------------------------- state

    # The URL with any password replaced by "***".
    def url
      @description
    end

    # True when subscribed on a live link.
    def connected?
      !@closing && Internal.query(@handle, false, &:is_connected)
    end

    # Number of wanted subscriptions of all kinds.
    def subscription_count
      @closing ? 0 : Internal.query(@handle, 0, &:count)
    end

    # Connects now (subscribing connects by itself).
    def connect
      with_handle(&:connect)
      self
    end

    # Makes a waiting #next_message return nil and ends #each_message and a
    # block-form subscribe loop, at once. Safe from any thread and from trap
    # handlers; when nothing waits, the next wait returns immediately.
    def wakeup
      @stop = true
      Internal.wake(@handle)
      nil
    end
    alias stop wakeup

    def inspect
      if @closing
        "#<#{self.class.name} #{@description} (closed)>"
      else
        "#<#{self.class.name} #{@description} (#{subscription_count} subscriptions, " \
          "#{connected? ? 'connected' : 'not connected'})>"
      end
    end
    alias to_s inspect

    # ---------------------------------------------------------------- subscriptions

    # Subscribes to each channel and waits until the server confirms, so a
    # message published afterwards is received. With a block, works as
    # redis-rb's subscribe: the block registers handlers (on.message { |channel,
    # message| }) and the call then dispatches messages until every
    # subscription is gone (unsubscribe in a handler), #stop or #close.
    def subscribe(*channels, &block)
      change(:subscribe, channels, block)
    end

    # Subscribes to glob-style patterns ("news.*"); see #subscribe.
    def psubscribe(*patterns, &block)
      change(:psubscribe, patterns, block)
    end

    # Subscribes to shard channels (Redis 7, SPUBLISH); see #subscribe.
    def ssubscribe(*channels, &block)
      change(:ssubscribe, channels, block)
    end

    # Removes channel subscriptions; without arguments, all of them.
    # Messages already received for them are still delivered.
    def unsubscribe(*channels)
      remove(:unsubscribe, channels)
    end

    def punsubscribe(*patterns)
      remove(:punsubscribe, patterns)
    end

    def sunsubscribe(*channels)
      remove(:sunsubscribe, channels)
    end

    # ---------------------------------------------------------------- receiving

    # The next Message, waiting up to timeout seconds (0: do not wait, nil:
    # until one arrives or #wakeup). nil on timeout, wakeup or close.
    def next_message(timeout: 0)
      check_timeout(timeout) unless timeout.equal?(0)
      buf = @lent ? lent_batch : @buf
      if (pos = @pos) < buf.size
        @pos = pos + 1
        return buf[pos]
      end
      raise Internal.state_error("the subscriber is closed") if @closing
      reading { fetch(timeout) }
    end

    # Yields each Message as it arrives; returns when #wakeup, #stop or
    # #close is called (from another thread or a trap handler), or, with
    # timeout:, when no message arrived for that many seconds. Without a
    # block, an Enumerator.
    def each_message(timeout: nil)
      check_timeout(timeout)
      # An external Enumerator (#next) runs the loop in a Fiber that may be
      # dropped half-way, its ensure never run: it reads through @buf.
      return enum_for(:each_held, timeout) unless block_given?
      raise Internal.state_error("the subscriber is closed") if @closing
      reading do
        # One C call makes a batch of Messages (Cimpl.sub_drain), which this
        # loop holds in a local variable (see #lend); per message only an
        # index moves, in a while loop (no block call, no method call of its
        # own). @pos is the truth, moved before each yield: a block that
        # breaks, raises or reads itself (#next_message, a nested loop)
        # leaves it right, and a block that made another batch current
        # changed @gen.
        while true
          buf = @lent ? lent_batch : @buf
          lent_here = false
          if @pos >= buf.size
            break unless (buf = lend(timeout))
            lent_here = true
          end
          gen = @gen
          begin
            while @gen == gen && (pos = @pos) < buf.size
              @pos = pos + 1
              yield buf[pos]
            end
          ensure
            keep(buf) if lent_here && @gen == gen
          end
        end
      end
      self
    end
    alias listen each_message
    # An alias, not a method that passes its block on: a block passed on
    # becomes a Proc, and yielding to a Proc costs more per message.
    alias each each_message

    # ---------------------------------------------------------------- routing

    # Routes the messages of every channel matching template (a
    # Reactis::Template or its text, e.g. "user:{user_id}:notifications") to
    # the block, with the captures as keyword arguments (binary Strings):
    #
    #   sub.on("user:{user_id}:notifications") { |msg, user_id:| ... }
    #   sub.on("chat:{room}") { |msg, caps| caps[:room] }   # or as a Hash
    #   sub.run
    #
    # Subscribes to the template's glob pattern (PSUBSCRIBE) at once. #run,
    # or #route on messages read otherwise, calls the blocks.
    def on(template, &block)
      raise ArgumentError, "on needs a block" unless block
      tpl = template.is_a?(Template) ? template : Template.new(template)
      (@routes ||= []) << [tpl, block]
      psubscribe(tpl.glob)
      self
    end

    # Calls the blocks of the routes msg matches (for a pattern message, the
    # routes whose glob is its pattern). true when one was called.
    def route(msg)
      return false if msg.gap? || msg.channel.nil? || @routes.nil?
      handled = false
      @routes.each do |tpl, block|
        next if msg.kind == :pmessage && msg.pattern.b != tpl.glob.b
        caps = tpl.match(msg.channel)
        next unless caps
        call_route(block, msg, caps)
        handled = true
      end
      handled
    end

    # Reads messages and dispatches them to the #on routes until #wakeup,
    # #stop or #close (or timeout seconds without a message); returns how
    # many were routed. Gaps go to on_gap, other messages to default (both
    # callables), else they are dropped.
    def run(timeout: nil, on_gap: nil, default: nil)
      routed = 0
      each_message(timeout: timeout) do |msg|
        if msg.gap?
          on_gap&.call(msg)
        elsif route(msg)
          routed += 1
        else
          default&.call(msg)
        end
      end
      routed
    end

    private

    # Captures as keyword arguments when the block takes any (only those it
    # names, unless it takes **rest), else as a Hash after the message.
    def call_route(block, msg, caps)
      params = block.parameters
      if params.any? { |type, _| type == :keyrest }
        block.call(msg, **caps)
      elsif params.any? { |type, _| %i[key keyreq].include?(type) }
        names = params.select { |type, _| %i[key keyreq].include?(type) }.map(&:last)
        block.call(msg, **caps.slice(*names))
      else
        block.call(msg, caps)
      end
    end

    def check_timeout(timeout)
      return if timeout.nil?
      raise TypeError, "timeout must be a number of seconds or nil" unless timeout.is_a?(Numeric)
      raise ArgumentError, "timeout must not be negative" if timeout.negative?
    end

    # One reader at a time: a second thread would steal events.
    def reading
      me = Thread.current
      if @reader && @reader != me && @reader.alive?
        raise Internal.state_error("another thread is reading this subscriber")
      end
      outer = @reader == me
      @reader = me
      begin
        yield
      ensure
        @reader = nil unless outer
      end
    end

    def change(verb, names, block)
      raise ArgumentError, "#{verb} needs at least one name" if names.empty?
      handlers = nil
      if block
        handlers = Handlers.new
        block.call(handlers)
      end
      names = names.flatten.map { |n| Internal.bytes(n, "channel") }
      with_handle do |h|
        names.each do |name|
          # A positive status (interrupted while waiting for the
          # confirmation) is fine: the subscription stays wanted and is
          # confirmed inside the next wait.
          h.public_send(verb, name)
          handlers&.call(verb, Internal.recode(name.dup, @encoding), h.count)
        end
      end
      Reactis.logger.debug { "#{verb} #{names.map(&:inspect).join(' ')} on #{@description}" }
      return self unless handlers
      dispatch(handlers)
    end

    def remove(verb, names)
      @changed = true
      with_handle do |h|
        if names.empty?
          h.public_send(verb, nil)
          @handlers&.call(verb, nil, h.count)
        else
          names.flatten.each do |n|
            h.public_send(verb, Internal.bytes(n, "channel"))
            @handlers&.call(verb, n, h.count)
          end
        end
      end
      self
    end

    # The block form's loop: until no subscription is left, #stop or #close.
    # The handlers are looked up once; per message the loop is that of
    # #each_message plus one Proc#call. The subscription count is looked at
    # again only after an unsubscribe.
    def dispatch(handlers)
      outer = @handlers
      @handlers = handlers
      @changed = true
      on_message = handlers[:message]
      on_pmessage = handlers[:pmessage]
      on_smessage = handlers[:smessage] || on_message
      on_gap = handlers[:gap]
      reading do
        while true
          break if @closing
          if @changed
            @changed = false
            break if subscription_count.zero?
          end
          # As in #each_message: @pos is the truth, moved before each
          # handler runs (a handler that raises or reads leaves it right);
          # close and unsubscribe are seen before the next message.
          buf = @lent ? lent_batch : @buf
          lent_here = false
          if @pos >= buf.size
            break unless (buf = lend(nil, true))
            lent_here = true
          end
          gen = @gen
          begin
            while @gen == gen && (pos = @pos) < buf.size && !@closing && !@changed
              @pos = pos + 1
              msg = buf[pos]
              case msg.kind
              when :message then on_message&.call(msg.channel, msg.data)
              when :pmessage then on_pmessage&.call(msg.pattern, msg.channel, msg.data)
              when :smessage then on_smessage&.call(msg.channel, msg.data)
              when :gap then on_gap&.call(msg)
              end
            end
          ensure
            keep(buf) if lent_here && @gen == gen
          end
        end
      end
      self
    ensure
      @handlers = outer
    end

    # The next Message, read ahead with the rest of its batch, which stays in
    # @buf; nil on timeout, wakeup or close.
    def fetch(timeout)
      events = drain(timeout, false) or return nil
      @buf = events
      @pos = 1
      @gen += 1
      events[0]
    end

    # The loop of #each_message without a block (an Enumerator): reads
    # through @buf, as #next_message does.
    def each_held(timeout)
      raise Internal.state_error("the subscriber is closed") if @closing
      reading do
        while true
          while (pos = @pos) < (buf = @lent ? lent_batch : @buf).size
            @pos = pos + 1
            yield buf[pos]
          end
          msg = fetch(timeout)
          break if msg.nil?
          yield msg
        end
      end
      self
    end

    # Batches of at least this many Messages are lent (below); smaller ones
    # go to @buf, where a WeakMap entry would cost more than it saves.
    LEND_MIN = 32
    private_constant :LEND_MIN

    # Reads a batch for a loop that holds it in a local variable, and
    # returns it (nil on timeout, wakeup or close); it becomes the current
    # batch. Held by this Subscriber (@buf), an old object by the time it
    # reads, the batch's Messages would be made old by the first GC they
    # live through (an object that an old one points to is promoted) and
    # freed only by a major GC: with a handler that allocates, a GC falls
    # inside nearly every batch, and every message would end up in the old
    # generation. Held only on the loop's stack they stay young and die
    # young. A #next_message called from the loop's block finds the batch
    # through @weak, which does not keep it; when the loop leaves it, #keep
    # puts what is left of it into @buf.
    def lend(timeout, stop_when_unsubscribed = false)
      events = drain(timeout, stop_when_unsubscribed) or return nil
      @pos = 0
      @gen += 1
      if events.size >= LEND_MIN
        # Under a key of its own: in Ruby 3.1 the WeakMap entry of a batch
        # that dies is removed by its key, whatever that key maps to by then.
        @weak[@gen] = events
        @lent = true
      else
        @buf = events
      end
      events
    end

    # The loop that lent buf leaves it (done, break or raise), and buf is
    # still the current batch: the rest of it goes to @buf.
    def keep(buf)
      @lent = false
      if @pos < buf.size
        @buf = buf
      else
        @buf = EMPTY
        @pos = 0
      end
    end

    # The lent batch. A loop below on this thread's stack (or another
    # thread's, for a #next_message from there) holds it, so it is alive,
    # unless that loop ran in a Fiber that was dropped without being
    # resumed (its ensure never ran): then what it had not read is gone.
    def lent_batch
      buf = @weak[@gen]
      return buf if buf
      Reactis.logger.warn do
        "a loop reading #{@description} was abandoned (a Fiber dropped while it waited in the block): " \
          "the rest of its batch is lost"
      end
      @lent = false
      @buf = EMPTY
      @pos = 0
      @gen += 1
      EMPTY
    end

    # Waits up to timeout seconds (nil = forever) in slices for a batch;
    # returns it, or nil on timeout, wakeup or close. The batch read before
    # is used up (the callers come here only then) and let go first, so a
    # GC during the C call does not find it held by this Subscriber.
    def drain(timeout, stop_when_unsubscribed)
      unless @buf.equal?(EMPTY) && !@lent
        @buf = EMPTY
        @lent = false
        @pos = 0
        @gen += 1
      end
      deadline = timeout && Internal.monotonic + timeout
      while true
        if @stop
          @stop = false
          return nil
        end
        return nil if @closing
        return nil if stop_when_unsubscribed && subscription_count.zero?
        ms = if deadline
               [[((deadline - Internal.monotonic) * 1000).ceil, 0].max, Internal::SLICE_MS].min
             else
               Internal::SLICE_MS
             end
        # One C call per batch (one GVL release), the Messages made in C.
        rc, events, others = with_handle { |h| Cimpl.sub_drain(h, ms, @batch, Message, @encoding, @cache) }
        if rc == Cimpl::OK && !events.empty?
          convert_events(events) if others.positive?
          return events
        end
        # RX_WOKEN: #wakeup (then @stop is set) or a stale wakeup: look again.
        # RX_EINTR: Ruby's interrupts were handled in the glue and none
        # raised. RX_TIMEOUT: one slice is over.
        return nil if deadline && Internal.monotonic >= deadline
      end
    rescue StateError
      raise unless @closing
      nil
    end

    # Turns the event Arrays of a drain (gaps) into Messages, in place.
    def convert_events(events)
      events.each_index do |i|
        ev = events[i]
        next unless ev.is_a?(Array)
        msg = Message.from_event(ev, @encoding)
        if msg.gap?
          Reactis.logger.warn do
            "reconnected to #{@description} after #{msg.reconnects} attempt(s): messages " \
              "published during the last #{msg.gap_end_ms - msg.gap_start_ms} ms may have been missed"
          end
        end
        events[i] = msg
      end
    end
  end
end
